//! `medsec serve` against real clients: curl for EST and the API, openssl for OCSP, CRLs and
//! TLS, including the abuse cases (wrong CA, revoked, plaintext, old TLS, wrong role).

mod common;
use common::server::*;
use common::*;

use std::process::{Command, Stdio};

#[test]
fn est_enroll_reenroll_and_refusals_with_curl() {
    let env = Env::new();
    let srv = start(&env);
    let est = |p: &str| format!("https://{}/.well-known/est/{p}", srv.https);

    let (body, code) = curl(&env, &["--cacert", "root.pem", &est("cacerts")]);
    assert_eq!(code, "200");
    p7_to_pem(&env, &body, "cacerts.pem");
    let certs = std::fs::read_to_string(env.path("cacerts.pem")).unwrap();
    contains(&certs, "Device Root CA");
    contains(&certs, "Device Issuing CA");
    let (_, code) = curl(&env, &["--cacert", "root.pem", &est("csrattrs")]);
    assert_eq!(code, "200");
    let (_, code) = curl(&env, &["--cacert", "root.pem", &est("nosuchlabel/cacerts")]);
    assert_eq!(code, "404");

    // First enrollment with a one-time token (HTTP Basic, RFC 7030 3.2.3).
    let tok = token(&env, "EST-1");
    let csr = b64_csr(&env, "dev", "p256", "/CN=EST-1");
    let ct = "Content-Type: application/pkcs10";
    let (body, code) = est_enroll(&env, &est("simpleenroll"), "EST-1", &tok, &csr);
    assert_eq!(code, "200", "{body}");
    p7_to_pem(&env, &body, "dev.pem");
    let (ok, said) = env.verify("dev.pem", &[]);
    assert!(ok, "{said}");
    contains(
        &env.openssl_ok(&["x509", "-in", "dev.pem", "-noout", "-subject"]),
        "serialNumber = EST-1",
    );
    // The token works once.
    let (body, code) = est_enroll(&env, &est("simpleenroll"), "EST-1", &tok, &csr);
    assert_eq!(code, "401", "{body}");
    contains(&body, "already used");
    // No credential, a wrong token, the wrong label.
    let (_, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-H",
            ct,
            "--data-binary",
            &csr,
            &est("simpleenroll"),
        ],
    );
    assert_eq!(code, "401");
    let (_, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-u",
            "EST-1:not-a-token",
            "-H",
            ct,
            "--data-binary",
            &csr,
            &est("simpleenroll"),
        ],
    );
    assert_eq!(code, "401");
    // Malformed bodies are 400 and store nothing.
    let before = env.json(&["cert", "list"]).as_array().unwrap().len();
    let tok2 = token(&env, "EST-2");
    std::fs::write(env.path("junk.b64"), "!!! not base64 !!!").unwrap();
    let (body, code) = est_enroll(&env, &est("simpleenroll"), "EST-2", &tok2, "@junk.b64");
    assert_eq!(code, "400", "{body}");
    contains(&body, "base64");
    std::fs::write(env.path("junk2.b64"), "Z2FyYmFnZQ==").unwrap();
    let (body, code) = est_enroll(&env, &est("simpleenroll"), "EST-2", &tok2, "@junk2.b64");
    assert_eq!(code, "400", "{body}");
    contains(&body, "CSR rejected");
    assert_eq!(
        env.json(&["cert", "list"]).as_array().unwrap().len(),
        before
    );

    // Re-enrollment with the current certificate and the same subject.
    let subj = "/O=medsec demo manufacturer/CN=demo-device-EST-1/serialNumber=EST-1";
    env.openssl_ok(&[
        "req", "-new", "-key", "dev.key", "-subj", subj, "-outform", "DER", "-out", "re.der",
    ]);
    env.openssl_ok(&["base64", "-in", "re.der", "-out", "re.b64"]);
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "--cert",
            "dev.pem",
            "--key",
            "dev.key",
            "-H",
            ct,
            "--data-binary",
            "@re.b64",
            &est("simplereenroll"),
        ],
    );
    assert_eq!(code, "200", "{body}");
    p7_to_pem(&env, &body, "dev2.pem");
    let s1 = env.openssl_ok(&["x509", "-in", "dev.pem", "-noout", "-serial"]);
    let s2 = env.openssl_ok(&["x509", "-in", "dev2.pem", "-noout", "-serial"]);
    assert_ne!(s1, s2);
    // A different subject is refused; no client certificate is refused.
    let other = b64_csr(&env, "other", "p256", "/CN=someone-else");
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "--cert",
            "dev2.pem",
            "--key",
            "dev.key",
            "-H",
            ct,
            "--data-binary",
            &other,
            &est("simplereenroll"),
        ],
    );
    assert_eq!(code, "400", "{body}");
    contains(&body, "subject");
    let (_, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-H",
            ct,
            "--data-binary",
            "@re.b64",
            &est("simplereenroll"),
        ],
    );
    assert_eq!(code, "401");

    // After revocation, re-enrollment with that certificate is refused.
    let serial2 = s2.trim().trim_start_matches("serial=").to_owned();
    env.ok(&["cert", "revoke", &serial2, "--reason", "keyCompromise"]);
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "--cert",
            "dev2.pem",
            "--key",
            "dev.key",
            "-H",
            ct,
            "--data-binary",
            "@re.b64",
            &est("simplereenroll"),
        ],
    );
    assert_eq!(code, "403", "{body}");
    contains(&body, "revoked");
    // After retirement, neither enrollment path works and no token can be made.
    env.ok(&["device", "retire", "urn:medsec:device:demo-device:EST-1"]);
    let (_, err) = env.fail(&[
        "token",
        "create",
        "--profile",
        "default",
        "--device",
        "EST-1",
    ]);
    contains(&err, "retired");
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "--cert",
            "dev.pem",
            "--key",
            "dev.key",
            "-H",
            ct,
            "--data-binary",
            "@re.b64",
            &est("simplereenroll"),
        ],
    );
    assert_eq!(code, "403", "{body}");
    drop(srv);
}

#[test]
fn ocsp_and_crl_over_http_see_revocation_at_once() {
    let env = Env::new();
    let srv = start(&env);
    let tok = token(&env, "OC-1");
    let csr = b64_csr(&env, "dev", "p256", "/CN=OC-1");
    let (body, code) = est_enroll(
        &env,
        &format!("https://{}/.well-known/est/simpleenroll", srv.https),
        "OC-1",
        &tok,
        &csr,
    );
    assert_eq!(code, "200", "{body}");
    p7_to_pem(&env, &body, "dev.pem");
    let url = format!("http://{}/ocsp", srv.http);
    let ocsp = || {
        env.openssl_ok(&[
            "ocsp",
            "-issuer",
            "chain.pem",
            "-cert",
            "dev.pem",
            "-url",
            &url,
            "-CAfile",
            "all.pem",
        ])
    };
    let first = ocsp();
    contains(&first, "Response verify OK");
    contains(&first, "dev.pem: good");
    // The OCSP URL in the certificate is this server's.
    contains(
        &env.openssl_ok(&["x509", "-in", "dev.pem", "-noout", "-ocsp_uri"]),
        &url,
    );

    let serial = env.openssl_ok(&["x509", "-in", "dev.pem", "-noout", "-serial"]);
    let serial = serial.trim().trim_start_matches("serial=").to_owned();
    env.ok(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    // Revoked from another process: the very next OCSP answer says so.
    let after = ocsp();
    contains(&after, "dev.pem: revoked");
    contains(&after, "Reason: keyCompromise");

    // The CRL at the distribution point written into the certificate lists it within a second.
    let cdp = env.openssl_ok(&[
        "x509",
        "-in",
        "dev.pem",
        "-noout",
        "-ext",
        "crlDistributionPoints",
    ]);
    let crl_url = format!("http://{}/crl/issuing.crl", srv.http);
    contains(&cdp, &crl_url);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let o = Command::new("curl")
        .args(["-sS", "-o", "issuing.crl", &crl_url])
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    assert!(o.status.success());
    env.openssl_ok(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        "issuing.crl",
        "-out",
        "issuing.crl.pem",
    ]);
    contains(
        &env.openssl_ok(&[
            "crl",
            "-in",
            "issuing.crl.pem",
            "-CAfile",
            "all.pem",
            "-noout",
        ]),
        "verify OK",
    );
    let (ok, said) = {
        env.ok(&[
            "crl",
            "generate",
            "--ca",
            "root",
            "--pem",
            "--out",
            &env.p("root.crl.pem"),
        ]);
        env.verify("dev.pem", &["issuing.crl.pem", "root.crl.pem"])
    };
    assert!(!ok);
    contains(&said, "certificate revoked");

    // OCSP over GET (RFC 6960 A.1) and malformed input.
    env.openssl_ok(&[
        "ocsp",
        "-issuer",
        "chain.pem",
        "-cert",
        "dev.pem",
        "-reqout",
        "req.der",
        "-no_nonce",
    ]);
    let req = std::fs::read(env.path("req.der")).unwrap();
    let b64 = base64_encode(&req)
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let o = Command::new("curl")
        .args(["-sS", "-o", "get.resp", &format!("{url}/{b64}")])
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    assert!(o.status.success());
    contains(
        &env.openssl_ok(&[
            "ocsp",
            "-respin",
            "get.resp",
            "-CAfile",
            "all.pem",
            "-issuer",
            "chain.pem",
            "-cert",
            "dev.pem",
            "-no_nonce",
        ]),
        "dev.pem: revoked",
    );
    let (_, code) = curl(
        &env,
        &["-H", "Content-Type: text/plain", "--data-binary", "x", &url],
    );
    assert_eq!(code, "415");
    drop(srv);
}

fn base64_encode(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// DigiCert-style abuse cases at the device gateway: wrong CA, revoked, plaintext, old TLS.
#[test]
fn device_gateway_mtls_and_abuse_cases() {
    let env = Env::new();
    let srv = start(&env);
    let whoami = format!("https://{}/device/v1/whoami", srv.device);
    let tok = token(&env, "GW-1");
    let csr = b64_csr(&env, "dev", "p256", "/CN=GW-1");
    let (body, _) = est_enroll(
        &env,
        &format!("https://{}/.well-known/est/simpleenroll", srv.https),
        "GW-1",
        &tok,
        &csr,
    );
    p7_to_pem(&env, &body, "dev.pem");

    let (body, code) = curl(
        &env,
        &[
            "--cacert", "root.pem", "--cert", "dev.pem", "--key", "dev.key", &whoami,
        ],
    );
    assert_eq!(code, "200", "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["device"], "urn:medsec:device:demo-device:GW-1");
    // openssl s_client with the device certificate completes the handshake and gets an answer.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("printf 'GET /device/v1/whoami HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' | openssl s_client -connect {} -cert dev.pem -key dev.key -CAfile root.pem -quiet 2>/dev/null", srv.device))
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    contains(
        &String::from_utf8_lossy(&o.stdout),
        "urn:medsec:device:demo-device:GW-1",
    );

    // No client certificate: refused in the handshake.
    let (_, code) = curl(&env, &["--cacert", "root.pem", &whoami]);
    assert_eq!(code, "000");
    // A certificate from a foreign CA with the same names: refused.
    env.openssl_ok(&[
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        "evil-ca.key",
        "-subj",
        "/O=medsec demo manufacturer/CN=medsec demo manufacturer Device Issuing CA",
        "-days",
        "30",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-out",
        "evil-ca.pem",
    ]);
    env.openssl_ok(&[
        "req",
        "-new",
        "-key",
        "dev.key",
        "-subj",
        "/CN=demo-device-GW-1",
        "-out",
        "evil.csr",
    ]);
    env.openssl_ok(&[
        "x509",
        "-req",
        "-in",
        "evil.csr",
        "-CA",
        "evil-ca.pem",
        "-CAkey",
        "evil-ca.key",
        "-days",
        "30",
        "-out",
        "evil.pem",
    ]);
    let (_, code) = curl(
        &env,
        &[
            "--cacert", "root.pem", "--cert", "evil.pem", "--key", "dev.key", &whoami,
        ],
    );
    assert_eq!(code, "000");
    // Plaintext HTTP to the device port and TLS 1.1 are refused.
    let (_, code) = curl(&env, &[&format!("http://{}/device/v1/whoami", srv.device)]);
    assert!(
        code == "000" || code.starts_with('4'),
        "plaintext got {code}"
    );
    let o = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &srv.device,
            "-tls1_1",
            "-cert",
            "dev.pem",
            "-key",
            "dev.key",
        ])
        .stdin(Stdio::null())
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    assert!(
        !o.status.success() || !String::from_utf8_lossy(&o.stdout).contains("Protocol  : TLSv1.1")
    );
    // A revoked certificate: refused in the handshake once the server has seen the revocation.
    let serial = env.openssl_ok(&["x509", "-in", "dev.pem", "-noout", "-serial"]);
    env.ok(&[
        "cert",
        "revoke",
        serial.trim().trim_start_matches("serial="),
        "--reason",
        "keyCompromise",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let (_, code) = curl(
        &env,
        &[
            "--cacert", "root.pem", "--cert", "dev.pem", "--key", "dev.key", &whoami,
        ],
    );
    assert_eq!(code, "000");
    drop(srv);
}

/// Roles on the admin API: an operator cannot change profiles, an auditor cannot revoke, a
/// device certificate is no API credential.
#[test]
fn admin_api_roles() {
    let env = Env::new();
    let srv = start(&env);
    let api = |p: &str| format!("https://{}/api/v1/{p}", srv.https);
    let tok = |role: &str| {
        env.json(&[
            "apitoken",
            "create",
            "--name",
            &format!("t-{role}"),
            "--role",
            role,
        ])["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (admin, operator, auditor) = (tok("admin"), tok("operator"), tok("auditor"));
    let bearer = |t: &str| format!("Authorization: Bearer {t}");
    let ctj = "Content-Type: application/json";

    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            &format!("https://{}/api/openapi.json", srv.https),
        ],
    );
    assert_eq!(code, "200");
    contains(&body, "\"openapi\":\"3.1.0\"");
    let (body, code) = curl(&env, &["--cacert", "root.pem", &api("profiles")]);
    assert_eq!(code, "401");
    contains(&body, "Bearer");
    let (_, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-H",
            &bearer("mst_0000000000000000_nope"),
            &api("profiles"),
        ],
    );
    assert_eq!(code, "401");
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-H",
            &bearer(&auditor),
            &api("profiles"),
        ],
    );
    assert_eq!(code, "200", "{body}");

    let profile = r#"{"name":"default","model":"demo-device","issuer":"issuing","key_types":["ecdsa-p256"],"validity_days":90,"organization":"Acme"}"#;
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-X",
            "PUT",
            "-H",
            &bearer(&operator),
            "-H",
            ctj,
            "--data",
            profile,
            &api("profiles/default"),
        ],
    );
    assert_eq!(code, "403", "{body}");
    contains(&body, "operator may not change profiles");
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-X",
            "PUT",
            "-H",
            &bearer(&admin),
            "-H",
            ctj,
            "--data",
            "{\"name\":",
            &api("profiles/default"),
        ],
    );
    assert_eq!(code, "400", "{body}");
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-X",
            "PUT",
            "-H",
            &bearer(&admin),
            "-H",
            ctj,
            "--data",
            profile,
            &api("profiles/default"),
        ],
    );
    assert_eq!(code, "200", "{body}");

    // Operator: enrollment token over the API, then issue and revoke.
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-H",
            &bearer(&operator),
            "-H",
            ctj,
            "--data",
            r#"{"profile":"default","device_serial":"API-1"}"#,
            &api("enrollment-tokens"),
        ],
    );
    assert_eq!(code, "201", "{body}");
    let csr = std::fs::read_to_string(env.openssl_csr("api", "p256", &[])).unwrap();
    let req = serde_json::json!({"profile": "default", "device_serial": "API-2", "csr_pem": csr})
        .to_string();
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-H",
            &bearer(&operator),
            "-H",
            ctj,
            "--data",
            &req,
            &api("certificates"),
        ],
    );
    assert_eq!(code, "201", "{body}");
    let issued: serde_json::Value = serde_json::from_str(&body).unwrap();
    let serial = issued["serial"].as_str().unwrap();
    std::fs::write(env.path("api.pem"), issued["pem"].as_str().unwrap()).unwrap();
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-H",
            &bearer(&auditor),
            "-H",
            ctj,
            "--data",
            r#"{"reason":"keyCompromise"}"#,
            &api(&format!("certificates/{serial}/revoke")),
        ],
    );
    assert_eq!(code, "403", "{body}");
    // A device certificate is no API credential.
    let (_, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "--cert",
            "api.pem",
            "--key",
            "api.key",
            "-H",
            ctj,
            "--data",
            r#"{"reason":"keyCompromise"}"#,
            &api(&format!("certificates/{serial}/revoke")),
        ],
    );
    assert_eq!(code, "401");
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-H",
            &bearer(&operator),
            "-H",
            ctj,
            "--data",
            r#"{"reason":"keyCompromise"}"#,
            &api(&format!("certificates/{serial}/revoke")),
        ],
    );
    assert_eq!(code, "200", "{body}");
    // Revoked through the API: OCSP says so immediately.
    contains(
        &env.openssl_ok(&[
            "ocsp",
            "-issuer",
            "chain.pem",
            "-cert",
            "api.pem",
            "-url",
            &format!("http://{}/ocsp", srv.http),
            "-CAfile",
            "all.pem",
        ]),
        "api.pem: revoked",
    );
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-H",
            &bearer(&auditor),
            &api("certificates?revoked=true"),
        ],
    );
    assert_eq!(code, "200");
    contains(&body, serial);
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-H",
            &bearer(&operator),
            "-H",
            ctj,
            "--data",
            r#"{"reason":"nonsense"}"#,
            &api(&format!("certificates/{serial}/revoke")),
        ],
    );
    assert_eq!(code, "400", "{body}");
    // The audit log names the API token that acted.
    let audit = env.ok(&["audit", "list", "--limit", "1000"]);
    contains(&audit, "api:t-operator");
    contains(&audit, "api:t-admin");
    drop(srv);
}

/// A certificate that has expired is refused by the gateway. The CA and the certificate are
/// made 400 days in the past (libfaketime) with a 365-day profile, so the certificate expired
/// 35 days ago while its CA is still valid.
#[test]
fn expired_device_certificate_is_refused() {
    if Command::new("faketime").arg("--version").output().is_err() {
        if std::env::var_os("CI").is_some() {
            panic!("faketime is required in CI: apt-get install faketime");
        }
        eprintln!("SKIPPED: faketime not installed");
        return;
    }
    let env = Env::new();
    let past = |args: &[&str]| {
        let o = Command::new("faketime")
            .args(["-f", "-400d", env!("CARGO_BIN_EXE_medsec"), "--data-dir"])
            .arg(env.data())
            .args(args)
            .env("MEDSEC_KEY_PASSPHRASE", PASSPHRASE)
            .current_dir(env.dir.path())
            .output()
            .unwrap();
        testlog::cli("medsec", args, &o);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    past(&["ca", "init"]);
    past(&[
        "profile",
        "set",
        "--name",
        "default",
        "--model",
        "demo-device",
        "--validity-days",
        "365",
    ]);
    let csr = env.openssl_csr("old", "p256", &[]);
    past(&[
        "cert",
        "issue",
        "--profile",
        "default",
        "--csr",
        csr.to_str().unwrap(),
        "--device",
        "OLD-1",
        "--out",
        &env.p("old.pem"),
    ]);
    let srv = start(&env);
    let (ok, said) = env.verify("old.pem", &[]);
    assert!(!ok);
    contains(&said, "certificate has expired");
    let (_, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "--cert",
            "old.pem",
            "--key",
            "old.key",
            &format!("https://{}/device/v1/whoami", srv.device),
        ],
    );
    assert_eq!(code, "000");
    drop(srv);
}

/// IDevID bootstrap: a certificate from the configured manufacturing CA, presented in TLS, is
/// the credential for first enrollment; its serialNumber names the device.
#[test]
fn idevid_bootstraps_enrollment() {
    let env = Env::new();
    env.openssl_ok(&[
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        "mfg.key",
        "-subj",
        "/O=Acme Manufacturing/CN=Acme IDevID CA",
        "-days",
        "3650",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
        "-out",
        "mfg.pem",
    ]);
    let idevid = |name: &str, serial: &str, ca: &str, cakey: &str| {
        env.openssl_ok(&[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-keyout",
            &format!("{name}.key"),
            "-subj",
            &format!("/O=Acme/CN=pump/serialNumber={serial}"),
            "-out",
            &format!("{name}.csr"),
        ]);
        std::fs::write(
            env.path("idevid.ext"),
            "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        env.openssl_ok(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            ca,
            "-CAkey",
            cakey,
            "-days",
            "3650",
            "-extfile",
            "idevid.ext",
            "-out",
            &format!("{name}.pem"),
        ]);
    };
    idevid("idev", "IDEV-7", "mfg.pem", "mfg.key");
    std::fs::create_dir_all(env.data()).unwrap();
    std::fs::write(
        env.data().join("medsec.toml"),
        format!("[server]\nidevid_ca = \"{}\"\n", env.p("mfg.pem")),
    )
    .unwrap();
    let srv = start(&env);
    let enroll = format!("https://{}/.well-known/est/simpleenroll", srv.https);
    let csr = b64_csr(&env, "ldev", "p256", "/CN=ldev");
    let ct = "Content-Type: application/pkcs10";
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "--cert",
            "idev.pem",
            "--key",
            "idev.key",
            "-H",
            ct,
            "--data-binary",
            &csr,
            &enroll,
        ],
    );
    assert_eq!(code, "200", "{body}");
    p7_to_pem(&env, &body, "ldev.pem");
    contains(
        &env.openssl_ok(&["x509", "-in", "ldev.pem", "-noout", "-subject"]),
        "serialNumber = IDEV-7",
    );
    contains(&env.ok(&["audit", "list", "--limit", "1000"]), "idevid:");
    // A device certificate from our own CA is not a manufacturer credential.
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "--cert",
            "ldev.pem",
            "--key",
            "ldev.key",
            "-H",
            ct,
            "--data-binary",
            &csr,
            &enroll,
        ],
    );
    assert_eq!(code, "401", "{body}");
    contains(&body, "manufacturing CA");
    // An IDevID from another manufacturer's CA does not get through TLS.
    env.openssl_ok(&[
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        "evil.key",
        "-subj",
        "/O=Acme Manufacturing/CN=Acme IDevID CA",
        "-days",
        "3650",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-out",
        "evil.pem",
    ]);
    idevid("fake", "IDEV-8", "evil.pem", "evil.key");
    let (_, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "--cert",
            "fake.pem",
            "--key",
            "fake.key",
            "-H",
            ct,
            "--data-binary",
            &csr,
            &enroll,
        ],
    );
    assert!(code == "000" || code == "401", "{code}");
    drop(srv);
}

/// A profile made with `--danger-no-bootstrap` enrolls without a credential (the CSR's
/// serialNumber names the device); every other profile refuses that.
#[test]
fn danger_no_bootstrap_profile_is_the_only_open_door() {
    let env = Env::new();
    let srv = start(&env);
    env.ok(&[
        "profile",
        "set",
        "--name",
        "open",
        "--model",
        "lab-device",
        "--danger-no-bootstrap",
    ]);
    let ct = "Content-Type: application/pkcs10";
    let csr = b64_csr(&env, "lab", "p256", "/CN=lab/serialNumber=OPEN-1");
    let url = |label: &str| format!("https://{}/.well-known/est/{label}/simpleenroll", srv.https);
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-H",
            ct,
            "--data-binary",
            &csr,
            &url("open"),
        ],
    );
    assert_eq!(code, "200", "{body}");
    p7_to_pem(&env, &body, "lab.pem");
    contains(
        &env.openssl_ok(&["x509", "-in", "lab.pem", "-noout", "-subject"]),
        "serialNumber = OPEN-1",
    );
    contains(
        &env.ok(&["audit", "list", "--limit", "1000"]),
        "unauthenticated",
    );
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-H",
            ct,
            "--data-binary",
            &csr,
            &url("default"),
        ],
    );
    assert_eq!(code, "401", "{body}");
    let nosn = b64_csr(&env, "nosn", "p256", "/CN=lab");
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-H",
            ct,
            "--data-binary",
            &nosn,
            &url("open"),
        ],
    );
    assert_eq!(code, "400", "{body}");
    contains(&body, "serialNumber");
    drop(srv);
}

#[test]
fn vulnerability_api_and_device_firmware_report() {
    let env = Env::new();
    let srv = start(&env);
    let api = |p: &str| format!("https://{}/api/v1/{p}", srv.https);
    let tok = |role: &str| {
        env.json(&[
            "apitoken",
            "create",
            "--name",
            &format!("v-{role}"),
            "--role",
            role,
        ])["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (operator, auditor) = (tok("operator"), tok("auditor"));
    let op = format!("Authorization: Bearer {operator}");
    let au = format!("Authorization: Bearer {auditor}");
    let data = |p: &str| {
        format!(
            "@{}",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(p)
                .display()
        )
    };
    let ca = ["--cacert", "root.pem"];
    let call = |extra: &[&str]| {
        let mut a: Vec<&str> = ca.to_vec();
        a.extend_from_slice(extra);
        curl(&env, &a)
    };

    // A device enrolls, then the SBOM of the firmware it runs is stored.
    let t = token(&env, "VM-1");
    let csr = b64_csr(&env, "vm", "p256", "/CN=VM-1");
    let (body, _) = est_enroll(
        &env,
        &format!("https://{}/.well-known/est/simpleenroll", srv.https),
        "VM-1",
        &t,
        &csr,
    );
    p7_to_pem(&env, &body, "vm.pem");
    let juice = data("sbom/tests/data/cyclonedx/cdx-1.6-juice-shop-14.1.1-npm.json");
    let sbom_url = api("firmware/demo-device/1.0/sbom");
    let (body, code) = call(&["-X", "PUT", "-H", &op, "--data-binary", &juice, &sbom_url]);
    assert_eq!(code, "201", "{body}");
    let (body, code) = call(&["-X", "PUT", "-H", &op, "--data-binary", &juice, &sbom_url]);
    assert_eq!(code, "409", "{body}");
    // A malformed SBOM: 400 problem+json naming the place, nothing stored.
    let (body, code) = call(&[
        "-X",
        "PUT",
        "-H",
        &op,
        "--data-binary",
        r#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"type":"library","name":"x","purl":"not a purl"}]}"#,
        &api("firmware/demo-device/2.0/sbom"),
    ]);
    assert_eq!(code, "400", "{body}");
    contains(&body, "components[0].purl");
    let (body, _) = call(&["-H", &au, &api("firmware?model=demo-device")]);
    let fws: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(fws.as_array().unwrap().len(), 1, "{fws}");
    // Auditors read, they do not import.
    let dump = data("vuln/tests/data/osv-npm-all.zip");
    let (_, code) = call(&[
        "-X",
        "POST",
        "-H",
        &au,
        "--data-binary",
        &dump,
        &api("advisories/osv"),
    ]);
    assert_eq!(code, "403");
    let (body, code) = call(&[
        "-X",
        "POST",
        "-H",
        &op,
        "--data-binary",
        &dump,
        &api("advisories/osv"),
    ]);
    assert_eq!(code, "200", "{body}");
    let (body, code) = call(&[
        "-X",
        "POST",
        "-H",
        &op,
        "-H",
        "Content-Type: application/json",
        "--data",
        "{}",
        &api("match"),
    ]);
    assert_eq!(code, "200", "{body}");

    // The device reports its firmware over mTLS; an unknown version is refused.
    let fw_url = format!("https://{}/device/v1/firmware", srv.device);
    let dev = [
        "--cert",
        "vm.pem",
        "--key",
        "vm.key",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/json",
    ];
    let mut a: Vec<&str> = dev.to_vec();
    a.extend(["--data", r#"{"version":"9.9"}"#, &fw_url]);
    let (body, code) = call(&a);
    assert_eq!(code, "404", "{body}");
    let mut a: Vec<&str> = dev.to_vec();
    a.extend(["--data", r#"{"version":"1.0"}"#, &fw_url]);
    let (body, code) = call(&a);
    assert_eq!(code, "200", "{body}");
    contains(&body, "urn:medsec:device:demo-device:VM-1");

    let affected = api("vulnerabilities/CVE-2024-4068/affected-devices");
    let (body, code) = call(&["-H", &au, &affected]);
    assert_eq!(code, "200", "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["count"], 1, "{v}");

    let triage = r#"{"model":"demo-device","version":"1.0","vulnerability":"CVE-2024-4068","state":"not_affected","justification":"vulnerable_code_not_in_execute_path","detail":"build-time only"}"#;
    let tj = [
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data",
        triage,
    ];
    let tr = api("findings/triage");
    let mut a: Vec<&str> = vec!["-H", &au];
    a.extend(tj);
    a.push(&tr);
    let (_, code) = call(&a);
    assert_eq!(code, "403");
    let mut a: Vec<&str> = vec!["-H", &op];
    a.extend(tj);
    a.push(&tr);
    let (body, code) = call(&a);
    assert_eq!(code, "201", "{body}");
    let (body, _) = call(&["-H", &au, &affected]);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["count"], 0, "{v}");

    let (body, code) = call(&[
        "-H",
        &au,
        &api("vex?format=csaf&model=demo-device&version=1.0"),
    ]);
    assert_eq!(code, "200", "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["document"]["csaf_version"], "2.0");
    let (body, code) = call(&["-H", &au, &api("vex?format=nope")]);
    assert_eq!(code, "400", "{body}");
    let (body, code) = call(&["-H", &au, &sbom_url]);
    assert_eq!(code, "200");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["specVersion"], "1.5");
    let (body, code) = call(&[
        "-H",
        &au,
        &api("devices/urn:medsec:device:demo-device:VM-1/findings"),
    ]);
    assert_eq!(code, "200", "{body}");
}

#[test]
fn risk_api_roles_and_documents() {
    let env = Env::new();
    let srv = start(&env);
    let api = |p: &str| format!("https://{}/api/v1/{p}", srv.https);
    let tok = |role: &str| {
        env.json(&[
            "apitoken",
            "create",
            "--name",
            &format!("r-{role}"),
            "--role",
            role,
        ])["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (admin, operator, auditor) = (tok("admin"), tok("operator"), tok("auditor"));
    let h = |t: &str| format!("Authorization: Bearer {t}");
    let file = |p: &str| {
        format!(
            "@{}",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(p)
                .display()
        )
    };
    let inv_url = api("models/infusion-pump-x2/risk/inventory");
    let inv = file("examples/infusion-pump/inventory.toml");
    let (_, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-X",
            "PUT",
            "-H",
            &h(&auditor),
            "--data-binary",
            &inv,
            &inv_url,
        ],
    );
    assert_eq!(code, "403");
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-X",
            "PUT",
            "-H",
            &h(&operator),
            "--data-binary",
            &inv,
            &inv_url,
        ],
    );
    assert_eq!(code, "200", "{body}");
    let bad = file("crates/risk/tests/data/dangling_endpoint_reference.toml");
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-X",
            "PUT",
            "-H",
            &h(&operator),
            "--data-binary",
            &bad,
            &inv_url,
        ],
    );
    assert_eq!(code, "400", "{body}");
    contains(&body, "line 26");
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-H",
            &h(&auditor),
            &api("models/infusion-pump-x2/risk/findings"),
        ],
    );
    assert_eq!(code, "200", "{body}");
    contains(&body, "plaintext-link");
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-H",
            &h(&auditor),
            &api("models/infusion-pump-x2/risk/report?format=html"),
        ],
    );
    assert_eq!(code, "200");
    contains(&body, "<table");
    // The policy shapes every rating: admins only.
    let (policy, _) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-H",
            &h(&auditor),
            &api("risk/policy"),
        ],
    );
    let (_, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-X",
            "PUT",
            "-H",
            &h(&operator),
            "--data-binary",
            &policy,
            &api("risk/policy"),
        ],
    );
    assert_eq!(code, "403");
    let (body, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-X",
            "PUT",
            "-H",
            &h(&admin),
            "--data-binary",
            &policy,
            &api("risk/policy"),
        ],
    );
    assert_eq!(code, "200", "{body}");
}
