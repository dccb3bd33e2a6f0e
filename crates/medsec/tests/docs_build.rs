//! `medsec docs build` on the infusion-pump example: the full set is produced; poppler reads
//! every section heading and the key facts out of the PDFs and renders every page; openpyxl
//! reads the MDS2; changing the data changes the right lines; unchanged data rebuilds
//! byte-identical; bad input gets a clear error.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Env, contains};

fn example(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/infusion-pump")
        .join(p)
        .display()
        .to_string()
}

const M: &str = "infusion-pump-x2";

fn poppler(tool: &str, args: &[&str]) -> Option<std::process::Output> {
    match Command::new(tool).args(args).output() {
        Ok(o) => Some(o),
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: {tool} (poppler-utils) is not installed");
            None
        }
        Err(e) => panic!("{tool} is required in CI (apt install poppler-utils): {e}"),
    }
}

fn pdf_text(pdf: &Path) -> Option<String> {
    let o = poppler("pdftotext", &[pdf.to_str().unwrap(), "-"])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Wrapped table cells break at line ends; searching the joined text finds them.
    Some(String::from_utf8(o.stdout).unwrap())
}

fn renders(pdf: &Path, dir: &Path) {
    let Some(o) = poppler(
        "pdftoppm",
        &[
            "-r",
            "40",
            "-png",
            pdf.to_str().unwrap(),
            dir.join("page").to_str().unwrap(),
        ],
    ) else {
        return;
    };
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "pdftoppm on {}: {}",
        pdf.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let info = poppler("pdfinfo", &[pdf.to_str().unwrap()]).unwrap();
    let pages: usize = String::from_utf8_lossy(&info.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    let pngs = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("page")
        })
        .count();
    assert_eq!(pngs, pages, "every page of {} rendered", pdf.display());
}

fn setup(env: &Env) {
    std::fs::create_dir_all(env.data()).unwrap();
    std::fs::write(
        env.data().join("medsec.toml"),
        "[pki]\norganization = \"Acme Medical\"\n[postmarket]\nmanufacturer_address = \"1 Example Street, Ottawa\"\ncsaf_base_url = \"https://psirt.acme.example\"\n[postmarket.security_txt]\ncontact = [\"mailto:psirt@acme.example\"]\n",
    )
    .unwrap();
    env.init_ca("p256");
    env.ok(&[
        "profile",
        "set",
        "--name",
        "pump",
        "--model",
        M,
        "--key-types",
        "ecdsa-p256",
        "--validity-days",
        "365",
    ]);
    env.ok(&[
        "firmware",
        "add",
        "--model",
        M,
        "--version",
        "2.1.0",
        "--released",
        "2026-06-01",
        "--support",
        "supported",
        "--end-of-support",
        "2031-06-30",
    ]);
    env.ok(&[
        "sbom",
        "import",
        "--model",
        M,
        "--version",
        "2.1.0",
        &example("sbom-2.1.0.cdx.json"),
    ]);
    env.ok(&["vuln", "import", "--osv", &example("osv")]);
    env.ok(&["vuln", "match"]);
    env.ok(&[
        "risk",
        "set-inventory",
        "--model",
        M,
        &example("inventory.toml"),
    ]);
    env.ok(&[
        "risk",
        "set-register",
        "--model",
        M,
        &example("register.toml"),
    ]);
    for (cat, f) in [
        ("penetration-test", "evidence/pentest-2026-05.junit.xml"),
        ("fuzzing", "evidence/fuzzing-2.1.0.junit.xml"),
        ("static-analysis", "evidence/semgrep-2.1.0.sarif"),
    ] {
        env.ok(&[
            "evidence",
            "import",
            "--model",
            M,
            "--version",
            "2.1.0",
            "--category",
            cat,
            &example(f),
        ]);
    }
}

fn build(env: &Env, out: &str, formats: &str) -> PathBuf {
    env.ok(&[
        "docs",
        "build",
        "--model",
        M,
        "--version",
        "2.1.0",
        "--out",
        out,
        "--format",
        formats,
        "--mds2-answers",
        &example("mds2-answers.toml"),
    ]);
    env.path(out)
}

fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"))
}

/// The PDF without its creation date, the one field allowed to differ between builds.
fn without_date(pdf: &[u8]) -> Vec<u8> {
    let s = String::from_utf8_lossy(pdf).into_owned();
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(i) = rest.find("/CreationDate") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let end = after.find(')').map(|j| j + 1).unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out.into_bytes()
}

#[test]
fn the_example_produces_the_full_set() {
    let env = Env::new();
    setup(&env);
    let out = build(&env, "docs1", "html,md,pdf");
    for f in [
        "premarket-cybersecurity.pdf",
        "premarket-cybersecurity.html",
        "premarket-cybersecurity.md",
        "labelling-cybersecurity.pdf",
        "labelling-cybersecurity.html",
        "labelling-cybersecurity.md",
        "gaps.md",
        "gaps.json",
        "mds2.xlsx",
        "mds2.json",
        "global-system-view.svg",
        "multi-patient-harm-view.svg",
        "updatability-view.svg",
        "use-case-enrollment.svg",
        "use-case-update.svg",
        "use-case-decommissioning.svg",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let Some(pm) = pdf_text(&out.join("premarket-cybersecurity.pdf")) else {
        return;
    };
    for heading in [
        "Device and scope",
        "Security risk management report",
        "Threat model summary",
        "Risk assessment",
        "Residual risk and acceptability",
        "Traceability: threat, control, requirement, test",
        "Security architecture views",
        "Global system view",
        "Multi-patient harm view",
        "Updatability and patchability view",
        "Security use case views",
        "Cybersecurity controls",
        "Authentication",
        "Authorization",
        "Cryptography",
        "Code, data and execution integrity",
        "Confidentiality",
        "Event detection and logging",
        "Resiliency and recovery",
        "Firmware and software updates",
        "Software bill of materials",
        "Unresolved anomalies",
        "Cybersecurity testing",
        "Cybersecurity management plan",
        "Coordinated vulnerability disclosure",
        "Patch timelines by risk level",
        "End-of-support policy",
    ] {
        contains(&pm, heading);
    }
    // Key facts: component count, end of support, open finding ids, the CVD contact, evidence.
    let comps = serde_json::from_str::<serde_json::Value>(&env.ok(&[
        "--json",
        "sbom",
        "export",
        "--model",
        M,
        "--version",
        "2.1.0",
    ]))
    .unwrap()["components"]
        .as_array()
        .unwrap()
        .len();
    contains(&pm, &format!("{comps} components in firmware 2.1.0"));
    contains(&pm, "2031-06-30");
    for id in ["DLA-3008-1", "DLA-3012-1", "DLA-3022-1", "DLA-3051-1"] {
        contains(&pm, id);
    }
    contains(&pm, "mailto:psirt@acme.example");
    contains(&pm, "pytest: 8 tests");
    renders(&out.join("premarket-cybersecurity.pdf"), &env.path("docs1"));
    let Some(lab) = pdf_text(&out.join("labelling-cybersecurity.pdf")) else {
        return;
    };
    for s in [
        "Recommended cybersecurity controls for users",
        "Network ports, protocols and services",
        "Software updates",
        "Software bill of materials",
        "End of support",
        "How to report a vulnerability",
        "Backup, restore and secure decommissioning",
        "mailto:psirt@acme.example",
        "2031-06-30",
        "8443",
    ] {
        contains(&lab, s);
    }
    let lab_dir = env.path("lab-pages");
    std::fs::create_dir_all(&lab_dir).unwrap();
    renders(&out.join("labelling-cybersecurity.pdf"), &lab_dir);

    // The MDS2 read by openpyxl equals the JSON, answer by answer.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/tests/mds2_read_xlsx.py");
    let o = Command::new("python3")
        .arg(&script)
        .stdin(std::fs::File::open(out.join("mds2.xlsx")).unwrap())
        .output()
        .expect("python3");
    let err = String::from_utf8_lossy(&o.stderr);
    if err.contains("No module named") {
        assert!(
            std::env::var_os("CI").is_none(),
            "openpyxl is required in CI: {err}"
        );
        eprintln!("SKIPPED: pip install openpyxl");
    } else {
        assert!(o.status.success(), "{err}");
        let sheet: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let json: serde_json::Value = serde_json::from_str(&read(&out, "mds2.json")).unwrap();
        let rows = sheet.to_string();
        for q in json["questions"].as_array().unwrap() {
            if let Some(a) = q["answer"].as_str() {
                assert!(
                    rows.contains(&format!("\"{}\"", q["id"].as_str().unwrap()))
                        && rows.contains(a),
                    "{q}"
                );
            }
        }
        let txcf = json["questions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["id"] == "TXCF-2")
            .unwrap();
        contains(txcf["source"].as_str().unwrap(), "derived");
    }

    // Unchanged data rebuilds byte-identical (PDF: all but its creation date).
    let again = build(&env, "docs2", "html,md,pdf");
    for f in std::fs::read_dir(&out).unwrap() {
        let name = f.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("page") {
            continue;
        }
        let (a, b) = (
            std::fs::read(out.join(&name)).unwrap(),
            std::fs::read(again.join(&name)).unwrap(),
        );
        if name.ends_with(".pdf") {
            assert!(
                without_date(&a) == without_date(&b),
                "{name} differs beyond its date"
            );
        } else {
            assert!(a == b, "{name} differs between two builds of the same data");
        }
    }
}

#[test]
fn changing_the_data_changes_the_right_lines() {
    let env = Env::new();
    setup(&env);
    let before = build(&env, "before", "md");
    // A new link without encryption, and one finding marked fixed.
    let inv = std::fs::read_to_string(example("inventory.toml")).unwrap()
        + "\n[[link]]\nid = \"pump-telnet\"\nfrom = \"pump\"\nto = \"hospital-server\"\ndirection = \"inbound\"\nprotocol = \"telnet\"\nport = 23\nauth = \"password\"\nencryption = \"none\"\n";
    let f = env.path("inventory.toml");
    std::fs::write(&f, inv).unwrap();
    env.ok(&["risk", "set-inventory", "--model", M, f.to_str().unwrap()]);
    env.ok(&[
        "vuln",
        "triage",
        "--model",
        M,
        "--version",
        "2.1.0",
        "--vuln",
        "DLA-3051-1",
        "--state",
        "fixed",
        "--reason",
        "tzdata updated in place",
    ]);
    let after = build(&env, "after", "md");
    let (lb, la) = (
        read(&before, "labelling-cybersecurity.md"),
        read(&after, "labelling-cybersecurity.md"),
    );
    assert!(
        !lb.contains("| 23 | telnet |") && la.contains("| 23 | telnet | inbound |"),
        "{la}"
    );
    contains(
        &la,
        "The telnet link to Pump management server (pump-telnet)",
    );
    let (pb, pa) = (
        read(&before, "premarket-cybersecurity.md"),
        read(&after, "premarket-cybersecurity.md"),
    );
    let open_row = |s: &str| {
        s.lines()
            .any(|l| l.starts_with("| DLA-3051-1 |") && l.contains("in\\_triage"))
    };
    assert!(open_row(&pb), "DLA-3051-1 open before");
    assert!(!open_row(&pa), "DLA-3051-1 no longer open after");
    assert!(
        pa.lines()
            .any(|l| l.starts_with("| DLA-3051-1 |") && l.contains("| fixed |")),
        "listed as closed"
    );
    contains(&pa, "3 open vulnerability findings");
    contains(&pb, "4 open vulnerability findings");
    let (gb, ga) = (read(&before, "gaps.json"), read(&after, "gaps.json"));
    assert!(
        !gb.contains("pump-telnet") && ga.contains("pump-telnet"),
        "the new link is a gap"
    );
    assert!(
        gb.contains("DLA-3051-1 in") && !ga.contains("DLA-3051-1 in"),
        "triaged finding leaves the gaps"
    );
    // Lines about other things did not move.
    let untouched = |s: &str| {
        s.lines()
            .filter(|l| l.contains("DLA-3008-1") || l.contains("End of support"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(untouched(&pb), untouched(&pa));
}

#[test]
fn bad_input_gets_a_clear_error() {
    let env = Env::new();
    setup(&env);
    let (code, err) = env.fail(&[
        "docs",
        "build",
        "--model",
        M,
        "--version",
        "9.9",
        "--out",
        "x",
    ]);
    assert_eq!(code, 1);
    contains(
        &err,
        "model infusion-pump-x2 has no firmware 9.9; known: 2.1.0",
    );
    let (_, err) = env.fail(&[
        "docs",
        "build",
        "--model",
        "no-such",
        "--version",
        "1",
        "--out",
        "x",
    ]);
    contains(&err, "no firmware of model no-such is registered");
    let (_, err) = env.fail(&[
        "docs",
        "build",
        "--model",
        M,
        "--version",
        "2.1.0",
        "--out",
        "x",
        "--format",
        "docx",
    ]);
    contains(&err, "\"docx\" is not html, md or pdf");
    let html = env.path("report.html");
    std::fs::write(&html, "<html><body>ZAP report</body></html>").unwrap();
    let (code, err) = env.fail(&[
        "evidence",
        "import",
        "--model",
        M,
        "--version",
        "2.1.0",
        "--category",
        "penetration-test",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    contains(&err, "not JUnit XML or SARIF 2.1.0: root element is <html>");
    let (_, err) = env.fail(&[
        "evidence",
        "import",
        "--model",
        M,
        "--version",
        "2.1.0",
        "--category",
        "penetration-test",
        &example("evidence/pentest-2026-05.junit.xml"),
    ]);
    contains(&err, "already");
    let bad = env.path("answers.toml");
    std::fs::write(&bad, "[answers.\"NOPE-1\"]\nanswer = \"yes\"\n").unwrap();
    let (_, err) = env.fail(&[
        "docs",
        "build",
        "--model",
        M,
        "--version",
        "2.1.0",
        "--out",
        "x",
        "--mds2-answers",
        bad.to_str().unwrap(),
    ]);
    contains(&err, "NOPE-1");
    assert!(!env.path("x").exists(), "a failed build writes nothing");
}

#[test]
fn served_for_download_under_the_api() {
    let env = Env::new();
    setup(&env);
    let cli = build(&env, "cli", "html,pdf");
    let srv = common::server::start(&env);
    let au = common::server::api_auth(&env, "auditor");
    let url = |f: &str| {
        format!(
            "https://{}/api/v1/models/{M}/firmware/2.1.0/docs/{f}",
            srv.https
        )
    };
    let get = |f: &str, out: &str| {
        common::server::curl(
            &env,
            &["--cacert", "root.pem", "-H", &au, "-o", out, &url(f)],
        )
    };
    let (_, code) = get("labelling-cybersecurity.html", "lab.html");
    assert_eq!(code, "200");
    assert!(
        std::fs::read(env.path("lab.html")).unwrap()
            == std::fs::read(cli.join("labelling-cybersecurity.html")).unwrap(),
        "the server builds the same document as the CLI"
    );
    let (_, code) = get("premarket-cybersecurity.pdf", "pm.pdf");
    assert_eq!(code, "200");
    assert!(
        without_date(&std::fs::read(env.path("pm.pdf")).unwrap())
            == without_date(&std::fs::read(cli.join("premarket-cybersecurity.pdf")).unwrap()),
        "the server's PDF differs from the CLI's beyond the creation date"
    );
    let (_, code) = get("mds2.xlsx", "m.xlsx");
    assert_eq!(code, "200");
    assert!(
        std::fs::read(env.path("m.xlsx"))
            .unwrap()
            .starts_with(b"PK")
    );
    let (body, code) = common::server::curl(&env, &["--cacert", "root.pem", &url("mds2.xlsx")]);
    assert_eq!(code, "401", "{body}");
    let (body, code) = common::server::curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-H",
            &au,
            &format!(
                "https://{}/api/v1/models/{M}/firmware/7.7/docs/gaps.json",
                srv.https
            ),
        ],
    );
    assert_eq!(code, "404", "{body}");
    contains(&body, "has no firmware 7.7");
}
