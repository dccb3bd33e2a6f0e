//! The dashboard in a real browser: Debian's headless Chromium driven by playwright-core
//! (tools/ui-tests) against `medsec serve` with seeded data. An operator finds a device and
//! revokes its certificate (then `openssl ocsp` says revoked), triages a finding (the VEX export
//! changes) and pauses a rollout; an auditor sees no action buttons and its forged POST is
//! refused; axe-core finds no serious or critical violations; screenshots are kept. Plus the
//! HTTP-level checks: CSRF, another user's cookie, escaping, security headers, lockout.

mod common;
use common::server::*;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

const OP_PW: &str = "operator password 1";
const AU_PW: &str = "auditor password 12";

fn tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/ui-tests")
}

fn user(env: &Env, name: &str, role: &str, pw: &str) {
    let o = Command::new(env!("CARGO_BIN_EXE_medsec"))
        .arg("--data-dir")
        .arg(env.data())
        .args(["user", "create", name, "--role", role])
        .env("MEDSEC_KEY_PASSPHRASE", PASSPHRASE)
        .env("MEDSEC_USER_PASSWORD", pw)
        .output()
        .unwrap();
    testlog::secret(pw);
    testlog::cli("medsec", &["user", "create"], &o);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Seeds a fleet: two devices with certificates, firmware with an SBOM and findings (one
/// component named like a script), a TUF release and an active rollout.
fn seed(env: &Env) -> (String, String) {
    env.init_ca("ecdsa-p256");
    let (s1, _) = env.issue("d1", "p256", "UI-1");
    let (s2, _) = env.issue("d2", "p256", "UI-2");
    // UI-3's certificate expires within 30 days: with its firmware's critical findings and the
    // untaken fix, it is a fleet-risk row.
    env.ok(&[
        "profile",
        "set",
        "--name",
        "short",
        "--model",
        "pump-x2",
        "--validity-days",
        "30",
    ]);
    let csr3 = env.openssl_csr("d3", "p256", &[]);
    env.ok(&[
        "cert",
        "issue",
        "--profile",
        "short",
        "--csr",
        csr3.to_str().unwrap(),
        "--device",
        "UI-3",
    ]);
    let data = |p: &str| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(p)
            .display()
            .to_string()
    };
    for v in ["14.1.1", "14.1.2"] {
        env.ok(&[
            "firmware",
            "add",
            "--model",
            "pump-x2",
            "--version",
            v,
            "--support",
            "supported",
        ]);
    }
    env.ok(&[
        "sbom",
        "import",
        "--model",
        "pump-x2",
        "--version",
        "14.1.1",
        &data("sbom/tests/data/cyclonedx/cdx-1.6-juice-shop-14.1.1-npm.json"),
    ]);
    let evil = env.path("evil.cdx.json");
    std::fs::write(
        &evil,
        json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [
            {"type": "library", "name": "<script>alert(1)</script>", "version": "1.0"}]})
        .to_string(),
    )
    .unwrap();
    env.ok(&[
        "sbom",
        "import",
        "--model",
        "pump-x2",
        "--version",
        "14.1.2",
        evil.to_str().unwrap(),
    ]);
    env.ok(&[
        "vuln",
        "import",
        "--osv",
        &data("vuln/tests/data/osv-npm-all.zip"),
    ]);
    // A catalog in CISA's format listing braces' CVE-2024-4068 (a finding of 14.1.1), so that
    // UI-3 runs KEV-listed firmware.
    let kev = env.path("kev.json");
    std::fs::write(
        &kev,
        json!({"title": "test catalog", "catalogVersion": "2026.11.29", "dateReleased": "2026-11-29T00:00:00.000Z",
               "count": 1, "vulnerabilities": [{"cveID": "CVE-2024-4068", "vendorProject": "micromatch",
               "product": "braces", "vulnerabilityName": "braces memory exhaustion", "dateAdded": "2026-11-01",
               "shortDescription": "-", "requiredAction": "update", "dueDate": "2026-11-22",
               "knownRansomwareCampaignUse": "Unknown", "notes": "", "cwes": []}]})
        .to_string(),
    )
    .unwrap();
    env.ok(&["vuln", "import", "--kev", kev.to_str().unwrap()]);
    env.ok(&["vuln", "match"]);
    for d in ["UI-1", "UI-2", "UI-3"] {
        env.ok(&[
            "device",
            "set-firmware",
            &format!("urn:medsec:device:pump-x2:{d}"),
            "14.1.1",
        ]);
    }
    env.ok(&["tuf", "init"]);
    let fw = env.path("fw.bin");
    std::fs::write(&fw, b"firmware 14.1.2").unwrap();
    env.ok(&[
        "release",
        "publish",
        "--model",
        "pump-x2",
        "--version",
        "14.1.2",
        "--security-version",
        "2",
        fw.to_str().unwrap(),
    ]);
    env.ok(&[
        "rollout",
        "create",
        "--model",
        "pump-x2",
        "--version",
        "14.1.2",
        "--cohort",
        "percent:100",
    ]);
    user(env, "olivia", "operator", OP_PW);
    user(env, "arthur", "auditor", AU_PW);
    (s1, s2)
}

/// Signs in with curl, returning the cookie jar file and the CSRF token on the fleet page.
fn sign_in(env: &Env, srv: &Server, name: &str, pw: &str) -> (String, String) {
    let jar = format!("{name}.jar");
    let (_, code) = curl(
        env,
        &[
            "-k",
            "-c",
            &jar,
            "--data-urlencode",
            &format!("username={name}"),
            "--data-urlencode",
            &format!("password={pw}"),
            &format!("https://{}/ui/login", srv.https),
        ],
    );
    assert_eq!(code, "303", "sign-in of {name}");
    let (body, code) = curl(
        env,
        &["-k", "-b", &jar, &format!("https://{}/ui/pki", srv.https)],
    );
    assert_eq!(code, "200");
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    (jar, csrf)
}

#[test]
fn dashboard_in_chromium() {
    let chromium = Path::new("/usr/bin/chromium");
    let node_mod = tools().join("node_modules/playwright-core");
    if !chromium.exists() || !node_mod.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs Debian's chromium and `npm ci --prefix tools/ui-tests`"
        );
        eprintln!("SKIPPED: chromium or tools/ui-tests/node_modules missing");
        return;
    }
    let env = Env::new();
    let (s1, s2) = seed(&env);
    let srv = start(&env);
    let base = format!("https://{}", srv.https);

    // HTTP level first: headers, escaping, CSRF and another user's session.
    let (jar_op, csrf_op) = sign_in(&env, &srv, "olivia", OP_PW);
    let (jar_au, csrf_au) = sign_in(&env, &srv, "arthur", AU_PW);
    let o = Command::new("curl")
        .args([
            "-sk",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-b",
            &jar_op,
            &format!("{base}/ui/"),
        ])
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&o.stdout).to_lowercase();
    for h in [
        "content-security-policy: default-src 'none'",
        "frame-ancestors 'none'",
        "strict-transport-security: max-age=",
        "x-content-type-options: nosniff",
    ] {
        contains(&head, h);
    }
    let cookie_line = {
        let o = Command::new("curl")
            .args([
                "-sk",
                "-D",
                "-",
                "-o",
                "/dev/null",
                "--data",
                &format!("username=olivia&password={}", OP_PW.replace(' ', "+")),
                &format!("{base}/ui/login"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_lowercase()
    };
    for a in ["httponly", "secure", "samesite=strict", "__host-"] {
        contains(&cookie_line, a);
    }
    let (body, _) = curl(
        &env,
        &[
            "-k",
            "-b",
            &jar_op,
            &format!("{base}/ui/vulns?diff_model=pump-x2&old=14.1.1&new=14.1.2"),
        ],
    );
    contains(&body, "&lt;script&gt;alert(1)&lt;/script&gt;");
    assert!(
        !body.contains("<script>alert(1)"),
        "component name rendered as markup"
    );
    let revoke2 = format!("{base}/ui/pki/certs/{s2}/revoke");
    let (_, code) = curl(
        &env,
        &[
            "-k",
            "-b",
            &jar_op,
            "--data",
            "reason=keyCompromise",
            &revoke2,
        ],
    );
    assert_eq!(code, "403", "no CSRF token");
    let (_, code) = curl(
        &env,
        &[
            "-k",
            "-b",
            &jar_au,
            "--data",
            &format!("csrf={csrf_op}&reason=keyCompromise"),
            &revoke2,
        ],
    );
    assert_eq!(
        code, "403",
        "the operator's token with the auditor's cookie"
    );
    let (_, code) = curl(
        &env,
        &[
            "-k",
            "-b",
            &jar_au,
            "--data",
            &format!("csrf={csrf_au}&reason=keyCompromise"),
            &revoke2,
        ],
    );
    assert_eq!(code, "403", "the auditor's own token, but not its role");
    let (_, code) = curl(&env, &["-k", &format!("{base}/ui/pki")]);
    assert_eq!(code, "303", "no session: back to sign-in");

    // The browser.
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let rollout = env.json(&["rollout", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let finding = env.json(&["vuln", "findings", "--model", "pump-x2"])[0]["vuln_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let scenario = json!({
        "base": base, "profile": env.p("chromium-profile"), "shots": shots,
        "operator": {"name": "olivia", "password": OP_PW},
        "auditor": {"name": "arthur", "password": AU_PW},
        "serial": "UI-1", "other_serial": s2, "rollout": rollout,
        "triage": {"vuln": finding},
    });
    let sc = env.path("scenario.json");
    std::fs::write(&sc, scenario.to_string()).unwrap();
    let o = Command::new("node")
        .arg(tools().join("drive.mjs"))
        .arg(&sc)
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let res: Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}"))
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&o.stderr)));
    assert!(
        res["errors"].as_array().is_some_and(|e| e.is_empty()),
        "{res}\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let step = |k: &str| {
        res["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|s| s.get(k).cloned())
            .unwrap_or_else(|| panic!("no step {k}: {res}"))
    };
    assert!(step("found_device").as_u64().unwrap() >= 1, "{res}");
    contains(
        step("after_revoke").as_str().unwrap(),
        "revoked (keyCompromise)",
    );
    let te = step("triage_error");
    assert_eq!(te["invalid"], "true", "{te}");
    contains(te["beside"].as_str().unwrap_or(""), "needs a justification");
    contains(te["summary"].as_str().unwrap_or(""), "There is a problem");
    contains(
        step("after_triage").as_str().unwrap(),
        "not_affected recorded",
    );
    contains(step("after_pause").as_str().unwrap(), "paused");
    assert_eq!(step("auditor_revoke_buttons"), 0);
    assert_eq!(step("auditor_forged_post"), 403);
    assert_eq!(step("operator_without_csrf"), 403);
    assert_eq!(
        step("tablet_overflow"),
        false,
        "the fleet page fits a tablet"
    );
    assert_eq!(step("first_tab"), "Skip to content");
    for (page, violations) in res["axe"].as_object().unwrap() {
        let bad: Vec<&Value> = violations
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(bad.is_empty(), "axe on {page}: {bad:?}");
    }
    assert!(shots.join("fleet.png").exists() && shots.join("pki.png").exists());

    // The revocation made in the browser is what openssl's OCSP client sees.
    let ocsp = env.openssl(&[
        "ocsp",
        "-issuer",
        "chain.pem",
        "-cert",
        "d1.pem",
        "-url",
        &format!("http://{}/ocsp", srv.http),
        "-CAfile",
        "all.pem",
    ]);
    let txt = String::from_utf8_lossy(&ocsp.stdout);
    contains(&txt, "d1.pem: revoked");
    let _ = s1;
    // The triage decision changed the VEX export; the rollout is paused.
    let vex = env.ok(&["vex", "export", "--format", "openvex", "--model", "pump-x2"]);
    assert!(
        vex.contains(&finding) && vex.contains("not_affected"),
        "{vex}"
    );
    let r = env.json(&["rollout", "show", &rollout]);
    assert_eq!(r["state"], "paused", "{r}");

    // A form error comes back beside its field, the field marked invalid, nothing recorded.
    // The form id of the finding's first row, as the page names it:
    let (vulns, _) = curl(&env, &["-k", "-b", &jar_op, &format!("{base}/ui/vulns")]);
    let first = vulns
        .split(r#"<form class="inline" id=""#)
        .nth(1)
        .unwrap_or_else(|| panic!("no triage form: {vulns}"));
    let form = first.split('"').next().unwrap().to_owned();
    let open_vuln = first
        .split(r#"name="vuln" value=""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let decisions = env.json(&["vuln", "findings", "--model", "pump-x2"]);
    let (body, code) = curl(
        &env,
        &[
            "-k",
            "-L",
            "-b",
            &jar_op,
            "--data",
            &format!(
                "csrf={csrf_op}&model=pump-x2&version=14.1.1&vuln={open_vuln}&state=not_affected&justification=&reason=because&form={form}"
            ),
            &format!("{base}/ui/vulns/triage"),
        ],
    );
    assert_eq!(code, "200");
    contains(&body, "There is a problem");
    contains(&body, &format!(r#"id="{form}-justification-error""#));
    contains(&body, "needs a justification");
    contains(
        &body,
        &format!(
            r#"id="{form}-justification" name="justification" aria-invalid="true" aria-describedby="{form}-justification-error""#
        ),
    );
    assert_eq!(
        env.json(&["vuln", "findings", "--model", "pump-x2"]),
        decisions,
        "a refused triage records nothing"
    );

    // Fleet risk: with the rollout paused, UI-3's row offers the one-click rollout of its fix,
    // to operators only.
    let (page, _) = curl(
        &env,
        &["-k", "-b", &jar_op, &format!("{base}/ui/fleet-risk")],
    );
    contains(&page, "urn:medsec:device:pump-x2:UI-3");
    contains(&page, "Roll out 14.1.2");
    let (au_page, _) = curl(
        &env,
        &["-k", "-b", &jar_au, &format!("{base}/ui/fleet-risk")],
    );
    contains(&au_page, "urn:medsec:device:pump-x2:UI-3");
    assert!(
        !au_page.contains("Roll out"),
        "the auditor has no rollout button"
    );
    let form = page
        .split(r#"name="form" value=""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let start = |version: &str| {
        curl(
            &env,
            &[
                "-k",
                "-L",
                "-b",
                &jar_op,
                "--data",
                &format!("csrf={csrf_op}&model=pump-x2&version={version}&form={form}"),
                &format!("{base}/ui/rollouts"),
            ],
        )
    };
    let (body, code) = start("9.9.9");
    assert_eq!(code, "200");
    contains(&body, "There is a problem");
    contains(&body, &format!(r#"id="{form}-version-error""#));
    contains(&body, "9.9.9");
    assert_eq!(env.json(&["rollout", "list"]).as_array().unwrap().len(), 1);
    let (body, code) = start("14.1.2");
    assert_eq!(code, "200");
    contains(&body, "of pump-x2 14.1.2 started");
    let rollouts = env.json(&["rollout", "list"]);
    let new = rollouts
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["state"] == "active")
        .unwrap_or_else(|| panic!("no active rollout: {rollouts}"));
    assert_eq!(
        new["target"].as_str().map(|t| t.contains("14.1.2")),
        Some(true),
        "{new}"
    );
    let (page, _) = curl(
        &env,
        &["-k", "-b", &jar_op, &format!("{base}/ui/fleet-risk")],
    );
    contains(&page, &format!("rollout {}", new["id"].as_str().unwrap()));
    assert!(
        !page.contains("Roll out 14.1.2"),
        "the row now links its rollout"
    );
}

#[test]
fn repeated_failed_sign_ins_lock_the_account() {
    let env = Env::new();
    env.init_ca("ecdsa-p256");
    user(&env, "olivia", "operator", OP_PW);
    let srv = start(&env);
    let login = format!("https://{}/ui/login", srv.https);
    for _ in 0..5 {
        let (body, code) = curl(
            &env,
            &[
                "-k",
                "--data",
                "username=olivia&password=wrong+password+x",
                &login,
            ],
        );
        assert_eq!(code, "401");
        contains(&body, "Wrong username or password.");
    }
    let (body, code) = curl(
        &env,
        &[
            "-k",
            "--data",
            &format!("username=olivia&password={}", OP_PW.replace(' ', "+")),
            &login,
        ],
    );
    assert_eq!(code, "403", "locked even with the right password");
    contains(&body, "locked");
    drop(srv);
    let log = env.ok(&["--json", "audit", "list", "--limit", "1000"]);
    contains(&log, "user.locked");
    contains(&log, "user.sign-in-failed");
}
