//! Operations: `/metrics` read by the Prometheus project's own Python parser, `/healthz` and
//! `/readyz` (ready, and not ready when the CA key cannot be unlocked), and JSON logs from
//! `serve --log-format json` that carry no secret.

mod common;
use common::server::*;
use common::*;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Starts `medsec serve` with extra arguments and environment, its stderr in `log` (a file, so
/// a chatty log never blocks the server on a full pipe).
/// With MEDSEC_TEST_LOG_DIR the file lives there (for scripts/secrets-in-logs.sh) and `log`
/// links to it.
fn start_logged(env: &Env, extra: &[&str], vars: &[(&str, &str)], log: &str) -> Server {
    testlog::secret_env(vars.iter().copied());
    let file = match testlog::new_log("medsec-serve") {
        Some(p) => {
            std::os::unix::fs::symlink(&p, env.path(log)).unwrap();
            testlog::append(&p)
        }
        None => std::fs::File::create(env.path(log)).unwrap(),
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_medsec"))
        .arg("--data-dir")
        .arg(env.data())
        .args(SERVE_ON_LOOPBACK)
        .args(extra)
        .env("MEDSEC_KEY_PASSPHRASE", PASSPHRASE)
        // Capture's NO_COLOR; its RUST_LOG gives way to this test's own.
        .envs(testlog::server_env())
        .env_remove("RUST_LOG")
        .env_remove("MEDSEC_LOG_FORMAT")
        .envs(vars.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let get = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| {
                panic!(
                    "no {k}= in {line:?}; server log:\n{}",
                    std::fs::read_to_string(env.path(log)).unwrap_or_default()
                )
            })
            .to_owned()
    };
    Server {
        http: get("http"),
        https: get("https"),
        device: get("device"),
        syslog: None,
        child,
    }
}

/// `curl -i`: (status, headers lower-cased, body).
fn get(env: &Env, url: &str) -> (String, String, String) {
    let o = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "20", "--cacert", "root.pem", url])
        .current_dir(env.dir.path())
        .output()
        .expect("curl must be installed");
    let out = String::from_utf8_lossy(&o.stdout).replace("\r\n", "\n");
    let (head, body) = out.split_once("\n\n").unwrap_or((&out, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("000")
        .to_owned();
    (status, head.to_lowercase(), body.to_owned())
}

type Samples = Vec<(String, HashMap<String, String>, f64)>;

/// Parses an exposition with `prometheus_client.parser.text_string_to_metric_families` (the
/// reference Python client, installed by scripts/test.sh) and returns every sample.
fn parse_with_prometheus_client(env: &Env, text: &str) -> Samples {
    std::fs::write(env.path("metrics.txt"), text).unwrap();
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
types = {}
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    assert fam.type in ("counter", "gauge", "histogram"), (fam.name, fam.type)
    assert fam.documentation, fam.name
    assert fam.name not in types, "family %s twice" % fam.name
    types[fam.name] = fam.type
    for s in fam.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let o = Command::new("python3")
        .args(["-c", script, &env.p("metrics.txt")])
        .output()
        .expect("python3 must be installed");
    assert!(
        o.status.success(),
        "prometheus_client refused the exposition (pip install prometheus-client; \
         scripts/test.sh installs it):\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Vec<(String, HashMap<String, String>, f64)> =
        serde_json::from_slice(&o.stdout).expect("parser output");
    v
}

fn value(s: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|x| x.2)
        .sum()
}

fn metrics(env: &Env, srv: &Server) -> Samples {
    let (status, head, body) = get(env, &format!("http://{}/metrics", srv.http));
    assert_eq!(status, "200", "{body}");
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    parse_with_prometheus_client(env, &body)
}

#[test]
fn metrics_move_with_est_ocsp_and_crl_and_probes_answer() {
    let env = Env::new();
    let srv = start(&env);
    for base in [
        format!("http://{}", srv.http),
        format!("https://{}", srv.https),
    ] {
        let (status, _, body) = get(&env, &format!("{base}/healthz"));
        assert_eq!((status.as_str(), body.as_str()), ("200", "ok"));
        let (status, _, body) = get(&env, &format!("{base}/readyz"));
        assert_eq!(status, "200", "{body}");
    }
    // Not on the HTTPS listener: one place to scrape, and nothing extra for API clients.
    let (status, _, _) = get(&env, &format!("https://{}/metrics", srv.https));
    assert_eq!(status, "404");

    let before = metrics(&env, &srv);
    assert_eq!(
        value(
            &before,
            "medsec_certificates_issued_total",
            &[("kind", "enroll")]
        ),
        0.0
    );
    assert_eq!(value(&before, "medsec_build_info", &[]), 1.0);
    assert!(value(&before, "process_resident_memory_bytes", &[]) > 0.0);
    assert!(value(&before, "process_open_fds", &[]) > 0.0);
    assert!(value(&before, "medsec_db_pool_max_connections", &[]) >= 1.0);

    enroll(&env, &srv, "OPS-1", "dev");
    // A refused enrollment counts under its status code.
    let csr = b64_csr(&env, "dev2", "p256", "/CN=OPS-2");
    let (_, code) = est_enroll(
        &env,
        &format!("https://{}/.well-known/est/simpleenroll", srv.https),
        "OPS-2",
        "not-a-token",
        &csr,
    );
    assert_eq!(code, "401");
    let url = format!("http://{}/ocsp", srv.http);
    let ocsp = |nonce: bool| {
        let mut a = vec![
            "ocsp",
            "-issuer",
            "chain.pem",
            "-cert",
            "dev.pem",
            "-url",
            &url,
            "-CAfile",
            "all.pem",
        ];
        if !nonce {
            a.push("-no_nonce");
        }
        env.openssl_ok(&a)
    };
    // Without a nonce the second identical request is served from the cache.
    contains(&ocsp(false), "dev.pem: good");
    contains(&ocsp(false), "dev.pem: good");
    let (_, code) = curl(&env, &[&format!("http://{}/ocsp/not%20base64!", srv.http)]);
    assert_eq!(code, "200");
    let (_, code) = curl(&env, &[&format!("http://{}/crl/issuing.crl", srv.http)]);
    assert_eq!(code, "200");

    let after = metrics(&env, &srv);
    let v = |n: &str, l: &[(&str, &str)]| value(&after, n, l);
    assert_eq!(
        v("medsec_certificates_issued_total", &[("kind", "enroll")]),
        1.0
    );
    assert_eq!(
        v(
            "medsec_certificate_issuance_seconds_count",
            &[("kind", "enroll")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "medsec_certificate_issuance_seconds_bucket",
            &[("kind", "enroll"), ("le", "+Inf")]
        ),
        1.0
    );
    let est = "medsec_est_requests_total";
    assert_eq!(
        v(est, &[("operation", "simpleenroll"), ("code", "200")]),
        1.0
    );
    assert_eq!(
        v(est, &[("operation", "simpleenroll"), ("code", "401")]),
        1.0
    );
    assert_eq!(v("medsec_ocsp_requests_total", &[("result", "good")]), 2.0);
    assert_eq!(
        v("medsec_ocsp_requests_total", &[("result", "malformed")]),
        1.0
    );
    assert_eq!(v("medsec_ocsp_cache_hits_total", &[]), 1.0);
    assert_eq!(v("medsec_ocsp_response_seconds_count", &[]), 3.0);
    assert_eq!(v("medsec_crl_fetches_total", &[("code", "200")]), 1.0);

    // A revocation shows as `revoked` (a nonce makes the request new to the cache).
    let serial = env.openssl_ok(&["x509", "-in", "dev.pem", "-noout", "-serial"]);
    let serial = serial.trim().trim_start_matches("serial=").to_owned();
    env.ok(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    contains(&ocsp(true), "dev.pem: revoked");
    let last = metrics(&env, &srv);
    assert_eq!(
        value(
            &last,
            "medsec_ocsp_requests_total",
            &[("result", "revoked")]
        ),
        1.0
    );
}

#[test]
fn not_ready_without_the_ca_key_and_metrics_can_be_turned_off() {
    let env = Env::new();
    env.init_ca("p256");
    // The server's own TLS identity from files, so that it starts without unlocking the CA key.
    env.openssl_ok(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "tls.key",
        "-out",
        "tls.pem",
        "-subj",
        "/CN=localhost",
        "-days",
        "2",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
    ]);
    std::fs::write(
        env.data().join("medsec.toml"),
        format!(
            "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\nmetrics = false\n",
            env.p("tls.pem"),
            env.p("tls.key")
        ),
    )
    .unwrap();
    let srv = start_logged(
        &env,
        &[],
        &[("MEDSEC_KEY_PASSPHRASE", "the wrong passphrase")],
        "wrong.log",
    );
    let (status, _, body) = get(&env, &format!("http://{}/healthz", srv.http));
    assert_eq!((status.as_str(), body.as_str()), ("200", "ok"));
    let (status, head, body) = get(&env, &format!("http://{}/readyz", srv.http));
    assert_eq!(status, "503", "{body}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    let p: serde_json::Value = serde_json::from_str(&body).unwrap();
    contains(
        p["detail"].as_str().unwrap(),
        "no issuing CA key could be loaded",
    );
    contains(p["detail"].as_str().unwrap(), "issuing");
    // The passphrase error stays in the log.
    let log = std::fs::read_to_string(env.path("wrong.log")).unwrap();
    contains(&log, "cannot be loaded");
    // `server.metrics = false` removes the route.
    let (status, _, _) = get(&env, &format!("http://{}/metrics", srv.http));
    assert_eq!(status, "404");
}

#[test]
fn json_logs_are_one_object_per_line_and_hold_no_secret() {
    let mut env = Env::new();
    env.ok(&["ca", "init", "--organization", "Acme Medical"]);
    let user_password = "correct horse battery staple 42";
    env.extra_env
        .push(("MEDSEC_USER_PASSWORD".into(), user_password.into()));
    env.ok(&["user", "create", "ops-admin", "--role", "admin"]);
    // Debug, not the default info: the strongest test that nothing logs a credential.
    let srv = start_logged(
        &env,
        &["--log-format", "json"],
        &[("RUST_LOG", "debug")],
        "serve.log",
    );
    env.write_trust();
    let tok = token(&env, "LOG-1");
    let csr = b64_csr(&env, "dev", "p256", "/CN=LOG-1");
    let est = format!("https://{}/.well-known/est/simpleenroll", srv.https);
    let (body, code) = est_enroll(&env, &est, "LOG-1", &tok, &csr);
    assert_eq!(code, "200", "{body}");
    // The same token again (refused), and a sign-in with the password and with a wrong one.
    let (_, code) = est_enroll(&env, &est, "LOG-1", &tok, &csr);
    assert_eq!(code, "401");
    let login = format!("https://{}/ui/login", srv.https);
    for (pw, want) in [(user_password, "303"), ("wrong password 1234", "401")] {
        let (_, code) = curl(
            &env,
            &[
                "--cacert",
                "root.pem",
                "--data-urlencode",
                "username=ops-admin",
                "--data-urlencode",
                &format!("password={pw}"),
                &login,
            ],
        );
        assert_eq!(code, want);
    }
    let auth = api_auth(&env, "auditor");
    let api_token = auth.trim_start_matches("Authorization: Bearer ").to_owned();
    let (_, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            "-H",
            &auth,
            &format!("https://{}/api/v1/devices", srv.https),
        ],
    );
    assert_eq!(code, "200");
    drop(srv);

    let log = std::fs::read_to_string(env.path("serve.log")).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() > 5, "too little logged at debug:\n{log}");
    let mut issued = None;
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        for k in ["timestamp", "level", "message"] {
            assert!(v.get(k).is_some_and(|x| x.is_string()), "no {k} in {l}");
        }
        if v["message"] == "certificate issued" {
            issued = Some(v);
        }
    }
    let issued = issued.unwrap_or_else(|| panic!("no issuance logged:\n{log}"));
    assert_eq!(issued["level"], "INFO");
    assert_eq!(issued["kind"], "enroll");
    contains(issued["device"].as_str().unwrap(), "LOG-1");
    for secret in [tok.as_str(), PASSPHRASE, user_password, api_token.as_str()] {
        assert!(!log.contains(secret), "a secret is in the log: {secret}");
    }
    // The token's random part alone (after the id) must not leak either.
    if let Some((_, tail)) = api_token.rsplit_once('_') {
        assert!(!log.contains(tail), "the API token's secret is in the log");
    }
}
