//! Access-control matrix generated from the OpenAPI document (issue 12): every operation of
//! `/api/openapi.json` x {no credential, device A's certificate, device B's certificate, an
//! expired API token, a revoked API token, auditor, operator, admin} -> the expected answer, against a real
//! `medsec serve`, as one test. `MEDSEC_WRITE_ACCESS_MATRIX=1` also writes the matrix to
//! `docs/access-matrix.md`.

mod common;
use common::server::*;
use common::*;

use std::fmt::Write as _;
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

/// The credential a request carries: the matrix's columns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cred {
    None,
    DeviceA,
    DeviceB,
    Expired,
    Revoked,
    Auditor,
    Operator,
    Admin,
}

/// Admin last: its authorized mutations run after everyone else's on each operation.
const COLUMNS: [Cred; 8] = [
    Cred::None,
    Cred::DeviceA,
    Cred::DeviceB,
    Cred::Expired,
    Cred::Revoked,
    Cred::Auditor,
    Cred::Operator,
    Cred::Admin,
];

impl Cred {
    fn label(self) -> &'static str {
        match self {
            Cred::None => "no credential",
            Cred::DeviceA => "device A cert",
            Cred::DeviceB => "device B cert",
            Cred::Expired => "expired API token",
            Cred::Revoked => "revoked API token",
            Cred::Auditor => "auditor token",
            Cred::Operator => "operator token",
            Cred::Admin => "admin token",
        }
    }

    fn rank(self) -> Option<u8> {
        match self {
            Cred::Auditor => Some(1),
            Cred::Operator => Some(2),
            Cred::Admin => Some(3),
            _ => None,
        }
    }
}

fn role_rank(role: &str) -> Option<u8> {
    match role {
        "auditor" => Some(1),
        "operator" => Some(2),
        "admin" => Some(3),
        _ => None,
    }
}

/// Who may call an operation, as the document declares it.
#[derive(Clone, Debug, PartialEq)]
enum Access {
    Public,
    Role(u8),
    Device,
    Enrollment,
}

/// `x-medsec-access`, else the description's "Requires role `X` or higher."; an operation
/// with neither (or with both disagreeing) is an error.
fn access_of(op: &Value) -> Result<Access, String> {
    let from_ext = match op["x-medsec-access"].as_str() {
        None => None,
        Some("public") => Some(Access::Public),
        Some("device") => Some(Access::Device),
        Some("enrollment") => Some(Access::Enrollment),
        Some(other) => Some(Access::Role(
            other
                .strip_prefix("role:")
                .and_then(role_rank)
                .ok_or_else(|| format!("unknown x-medsec-access {other:?}"))?,
        )),
    };
    let from_text = op["description"].as_str().and_then(|d| {
        let role = d.split("Requires role `").nth(1)?.split('`').next()?;
        d.contains("` or higher.")
            .then(|| role_rank(role).map(Access::Role))
            .flatten()
    });
    match (from_ext, from_text) {
        (Some(a), Some(b)) if a != b => {
            Err(format!("x-medsec-access says {a:?}, the description {b:?}"))
        }
        (Some(a), _) | (None, Some(a)) => Ok(a),
        (None, None) => Err("declares no access (x-medsec-access or \"Requires role\")".into()),
    }
}

/// What a cell must show.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// 401 problem+json.
    Unauthorized,
    /// 403 problem+json.
    Forbidden,
    /// The handler ran: anything but 401/403, a refused handshake, a 5xx, or an unrouted
    /// 404/405 (those carry no problem+json body).
    Allowed,
    /// Device listener without a client certificate: handshake refused (or 401).
    Refused,
    /// Device B naming device A's resource: 403 or 404 problem+json.
    OtherDevice,
}

impl Expect {
    fn label(self) -> &'static str {
        match self {
            Expect::Unauthorized => "401",
            Expect::Forbidden => "403",
            Expect::Allowed => "handler runs (not 401/403/5xx)",
            Expect::Refused => "refused handshake or 401",
            Expect::OtherDevice => "403/404",
        }
    }
}

fn expect(access: &Access, on_device_listener: bool, cred: Cred, names_a: bool) -> Expect {
    match access {
        Access::Public => Expect::Allowed,
        // Nobody in the matrix holds a bootstrap credential: an API token is not an
        // enrollment token, an operational device certificate is not an IDevID.
        Access::Enrollment => Expect::Unauthorized,
        Access::Role(need) => match cred.rank() {
            None => Expect::Unauthorized,
            Some(r) if r >= *need => Expect::Allowed,
            Some(_) => Expect::Forbidden,
        },
        Access::Device => match cred {
            Cred::DeviceA => Expect::Allowed,
            Cred::DeviceB if names_a => Expect::OtherDevice,
            Cred::DeviceB => Expect::Allowed,
            _ if on_device_listener => Expect::Refused,
            _ => Expect::Unauthorized,
        },
    }
}

struct Answer {
    code: String,
    content_type: String,
    body: String,
}

impl Answer {
    fn problem(&self) -> bool {
        self.content_type.starts_with("application/problem+json")
    }

    fn meets(&self, e: Expect) -> bool {
        let c = self.code.as_str();
        match e {
            Expect::Unauthorized => c == "401" && self.problem(),
            Expect::Forbidden => c == "403" && self.problem(),
            Expect::Refused => c == "000" || (c == "401" && self.problem()),
            Expect::OtherDevice => (c == "403" || c == "404") && self.problem(),
            Expect::Allowed => {
                let refused = matches!(c, "000" | "401" | "403");
                let failed = c.starts_with('5');
                // The router's own 404/405 (no such route) carries no problem+json.
                let unrouted = matches!(c, "404" | "405") && !self.problem();
                !(refused || failed || unrouted)
            }
        }
    }

    fn cell(&self) -> String {
        if self.code == "000" {
            "refused".into()
        } else {
            self.code.clone()
        }
    }
}

/// The objects the path templates name, created before the matrix runs.
struct Fixture {
    device_a: String,
    device_b: String,
    /// A third device: the API routes that name a device (retire, tags, ...) act on it, so
    /// that authorized mutations cannot take device A or B off the gateway.
    device_c: String,
    cert_c: String,
    rollout: String,
    incident: String,
    cvd: String,
    advisory: String,
    vuln: String,
}

/// Values for path parameters: the only thing the test knows about the routes. A template
/// naming a parameter not listed here fails the test (add a value, with a real object).
fn path_value(path: &str, name: &str, fx: &Fixture) -> Option<String> {
    let under = |p: &str| path.starts_with(p);
    Some(match name {
        "name" if under("/api/v1/profiles/") => "default".into(),
        "urn" if under("/api/v1/devices/") => fx.device_c.clone(),
        "serial" if under("/api/v1/certificates/") => fx.cert_c.clone(),
        "model" => "demo-device".into(),
        "version" => "1.0".into(),
        "old" => "1.0".into(),
        "new" => "2.0".into(),
        "file" => "gaps.json".into(),
        "doc" if under("/api/v1/models/") => "inventory".into(),
        "doc" if under("/api/v1/risk/") => "policy".into(),
        "id" if under("/api/v1/vulnerabilities/") => fx.vuln.clone(),
        "id" if under("/api/v1/rollouts/") => fx.rollout.clone(),
        "action" if under("/api/v1/rollouts/") => "pause".into(),
        "id" if under("/api/v1/incidents/") => fx.incident.clone(),
        "obligation" => "fda-customer-notification".into(),
        "id" if under("/api/v1/cvd/reports/") => fx.cvd.clone(),
        "id" if under("/api/v1/advisories/") => fx.advisory.clone(),
        "label" if under("/.well-known/est/") => "default".into(),
        "path" if under("/.well-known/csaf/white/") => "index.txt".into(),
        _ => return None,
    })
}

/// Device operations get minimal valid bodies (so the device columns show the handler's
/// success); `true` when the body names device A's resource (device B must be refused).
fn device_body(path: &str, fx: &Fixture) -> Option<(Value, bool)> {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    Some(match path {
        "/device/v1/firmware" => (json!({"version": "1.0"}), false),
        "/device/v1/update-status" => (
            json!({"rollout": fx.rollout, "status": "downloading"}),
            true,
        ),
        "/device/v1/events" => (
            json!([{"id": "access-matrix-1", "time": now, "type": "auth-failure", "severity": "low"}]),
            false,
        ),
        _ => return None,
    })
}

struct Ctx<'a> {
    env: &'a Env,
    https: String,
    device: String,
    tokens: [(Cred, String); 5],
}

impl Ctx<'_> {
    fn call(
        &self,
        cred: Cred,
        listener_device: bool,
        method: &str,
        path: &str,
        body: Option<(&str, &str)>,
    ) -> Answer {
        let host = if listener_device {
            &self.device
        } else {
            &self.https
        };
        let url = format!("https://{host}{path}");
        let mut a: Vec<String> = [
            "-sS",
            "--max-time",
            "60",
            "-w",
            "\n%{http_code}\n%{content_type}",
            "--cacert",
            "root.pem",
            "-X",
            &method.to_uppercase(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        match cred {
            Cred::DeviceA | Cred::DeviceB => {
                let n = if cred == Cred::DeviceA {
                    "dev-a"
                } else {
                    "dev-b"
                };
                a.extend([
                    "--cert".into(),
                    format!("{n}.pem"),
                    "--key".into(),
                    format!("{n}.key"),
                ]);
            }
            Cred::None => {}
            _ => {
                let t = &self.tokens.iter().find(|(c, _)| *c == cred).unwrap().1;
                a.extend(["-H".into(), format!("Authorization: Bearer {t}")]);
            }
        }
        if let Some((ct, data)) = body {
            a.extend([
                "-H".into(),
                format!("Content-Type: {ct}"),
                "--data-binary".into(),
                data.into(),
            ]);
        }
        a.push(url);
        let o = Command::new("curl")
            .args(&a)
            .current_dir(self.env.dir.path())
            .output()
            .expect("curl must be installed");
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let mut it = out.rsplitn(3, '\n');
        let content_type = it.next().unwrap_or("").to_owned();
        let code = it.next().unwrap_or("000").to_owned();
        let mut body = it.next().unwrap_or("").to_owned();
        if code == "000" {
            body.push_str(&String::from_utf8_lossy(&o.stderr));
        }
        Answer {
            code,
            content_type,
            body,
        }
    }

    /// Setup through the API with the admin token; insists on 2xx.
    fn admin(&self, method: &str, path: &str, ct: &str, body: &str) -> Value {
        let body = (method != "get").then_some((ct, body));
        let a = self.call(Cred::Admin, false, method, path, body);
        assert!(
            a.code.starts_with('2'),
            "{method} {path}: {} {}",
            a.code,
            a.body
        );
        serde_json::from_str(&a.body).unwrap_or(Value::Null)
    }
}

const JSON: &str = "application/json";

fn config(env: &Env) {
    std::fs::create_dir_all(env.data()).unwrap();
    std::fs::write(
        env.data().join("medsec.toml"),
        r#"
[postmarket]
cvd_per_hour = 1000.0
cvd_burst = 1000.0
manufacturer_address = "1 Example Street, Ottawa"
csaf_base_url = "https://psirt.acme.example"

[postmarket.security_txt]
contact = ["mailto:psirt@acme.example"]
"#,
    )
    .unwrap();
}

fn sbom(version: &str) -> String {
    json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "components": [{"type": "library", "name": "braces", "version": version,
                        "purl": format!("pkg:npm/braces@{version}")}]})
    .to_string()
}

#[test]
fn every_documented_operation_against_every_credential() {
    let started = Instant::now();
    let env = Env::new();
    config(&env);
    let srv = start(&env);
    let token = |name: &str, role: &str, extra: &[&str]| {
        let mut a = vec!["apitoken", "create", "--name", name, "--role", role];
        a.extend_from_slice(extra);
        env.json(&a)["token"].as_str().unwrap().to_owned()
    };
    let cx = Ctx {
        env: &env,
        https: srv.https.clone(),
        device: srv.device.clone(),
        tokens: [
            // An admin token that has expired: the role must not survive the expiry.
            (
                Cred::Expired,
                token("matrix-expired", "admin", &["--ttl-days", "0"]),
            ),
            // An admin token revoked while the server has it cached (see below).
            (Cred::Revoked, token("matrix-revoked", "admin", &[])),
            (Cred::Auditor, token("matrix-auditor", "auditor", &[])),
            (Cred::Operator, token("matrix-operator", "operator", &[])),
            (Cred::Admin, token("matrix-admin", "admin", &[])),
        ],
    };

    // The revoked column's token works first, so the server caches its verification; then
    // `apitoken revoke` (another process, as on another replica) must end it at the next call.
    let revoked = &cx
        .tokens
        .iter()
        .find(|(c, _)| *c == Cred::Revoked)
        .unwrap()
        .1;
    let a = cx.call(Cred::Revoked, false, "get", "/api/v1/profiles", None);
    assert_eq!(a.code, "200", "{}", a.body);
    let id = revoked.split('_').nth(1).unwrap();
    let listed = env.json(&["apitoken", "list"]);
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap();
    assert_eq!(
        (row["name"].as_str(), row["revoked"].as_bool()),
        (Some("matrix-revoked"), Some(false))
    );
    assert!(
        !listed.to_string().contains(revoked.as_str()),
        "list shows a secret"
    );
    env.ok(&["apitoken", "revoke", id]);
    let a = cx.call(Cred::Revoked, false, "get", "/api/v1/profiles", None);
    assert_eq!(a.code, "401", "a revoked token still works: {}", a.body);
    let (code, msg) = env.fail(&["apitoken", "revoke", id]);
    assert_ne!(code, 0);
    assert!(msg.contains("revoked already"), "{msg}");

    // Devices A and B hold certificates for the device columns; C is what API routes that
    // name a device act on.
    let urn = |s: &str| format!("urn:medsec:device:demo-device:{s}");
    for (serial, name) in [("AM-A", "dev-a"), ("AM-B", "dev-b"), ("AM-C", "dev-c")] {
        enroll(&env, &srv, serial, name);
    }
    let certs = cx.admin(
        "get",
        &format!("/api/v1/certificates?device={}", urn("AM-C")),
        JSON,
        "",
    );
    let cert_c = certs[0]["serial"].as_str().unwrap().to_owned();

    // Secure updates: a published release and a rollout to device A alone.
    env.ok(&["tuf", "init"]);
    std::fs::write(env.path("fw-2.0.bin"), vec![0x5a; 4096]).unwrap();
    env.ok(&[
        "release",
        "publish",
        "--model",
        "demo-device",
        "--version",
        "2.0",
        "--security-version",
        "2",
        &env.p("fw-2.0.bin"),
    ]);
    let rollout = cx.admin(
        "post",
        "/api/v1/rollouts",
        JSON,
        &json!({"model": "demo-device", "version": "2.0", "stages": [100],
                "cohort": {"kind": "devices", "value": [urn("AM-A")]}})
        .to_string(),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Vulnerability management: firmware 1.0 and 2.0 with SBOMs, one advisory, a finding on
    // device C's firmware, a published TLP:WHITE CSAF advisory.
    cx.admin("put", "/api/v1/firmware/demo-device/1.0", JSON, "{}");
    for v in ["1.0", "2.0"] {
        let c = if v == "1.0" { "3.0.2" } else { "3.0.3" };
        cx.admin(
            "put",
            &format!("/api/v1/firmware/demo-device/{v}/sbom"),
            "application/octet-stream",
            &sbom(c),
        );
    }
    let vuln = "CVE-2024-4068";
    let osv = json!({"id": "GHSA-grv7-fg5c-xmjg", "modified": "2024-05-14T00:00:00Z",
        "aliases": [vuln], "summary": "braces: uncontrolled resource consumption",
        "affected": [{"package": {"ecosystem": "npm", "name": "braces"},
                      "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "3.0.3"}]}]}]});
    cx.admin(
        "post",
        "/api/v1/advisories/osv",
        "application/octet-stream",
        &osv.to_string(),
    );
    cx.admin("post", "/api/v1/match", JSON, "{}");
    cx.admin(
        "put",
        &format!("/api/v1/devices/{}/firmware", urn("AM-C")),
        JSON,
        r#"{"version":"1.0"}"#,
    );
    let advisory = cx.admin(
        "post",
        "/api/v1/advisories",
        JSON,
        &json!({"id": "ACME-2026-0001", "title": "Access matrix fixture", "model": "demo-device",
                "vulnerabilities": [vuln], "fixed_in": ["2.0"], "tlp": "white", "status": "final"})
        .to_string(),
    )["document"]["tracking"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Post-market: an incident and a researcher's report.
    let incident = cx.admin(
        "post",
        "/api/v1/incidents",
        JSON,
        r#"{"title":"Access matrix fixture","model":"demo-device"}"#,
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cvd = cx.call(
        Cred::None,
        false,
        "post",
        "/cvd/reports",
        Some((
            JSON,
            r#"{"title":"t","description":"access matrix fixture"}"#,
        )),
    );
    assert_eq!(cvd.code, "201", "{}", cvd.body);
    let cvd = serde_json::from_str::<Value>(&cvd.body).unwrap()["tracking_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let fx = Fixture {
        device_a: urn("AM-A"),
        device_b: urn("AM-B"),
        device_c: urn("AM-C"),
        cert_c,
        rollout,
        incident,
        cvd,
        advisory,
        vuln: vuln.into(),
    };
    let setup = started.elapsed();

    // The document, fetched like any client would.
    let doc = cx.call(Cred::None, false, "get", "/api/openapi.json", None);
    assert_eq!(doc.code, "200", "{}", doc.body);
    let doc: Value = serde_json::from_str(&doc.body).unwrap();

    let mut rows: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut mismatches: Vec<[String; 5]> = Vec::new();
    let mut cells = 0usize;
    let mut operations = 0usize;
    let paths = doc["paths"].as_object().expect("paths");
    for (template, item) in paths {
        let mut path = template.clone();
        let mut unknown = Vec::new();
        for name in template
            .split('{')
            .skip(1)
            .filter_map(|s| s.split('}').next())
        {
            match path_value(template, name, &fx) {
                Some(v) => path = path.replace(&format!("{{{name}}}"), &v),
                None => unknown.push(name.to_owned()),
            }
        }
        for method in ["get", "put", "post", "patch", "delete"] {
            let Some(op) = item.get(method) else { continue };
            operations += 1;
            let what = format!("{} {template}", method.to_uppercase());
            if !unknown.is_empty() {
                mismatches.push([
                    template.clone(),
                    method.to_uppercase(),
                    "-".into(),
                    "a value for every path parameter".into(),
                    format!("no fixture value for {unknown:?}"),
                ]);
                continue;
            }
            let access = match access_of(op) {
                Ok(a) => a,
                Err(e) => {
                    mismatches.push([
                        template.clone(),
                        method.to_uppercase(),
                        "-".into(),
                        "declared access".into(),
                        e,
                    ]);
                    continue;
                }
            };
            let on_device = op["x-medsec-listener"] == "device";
            let (body, names_a) = match device_body(template, &fx) {
                Some((v, names_a)) => (Some((JSON.to_owned(), v.to_string())), names_a),
                None => {
                    let ct = op["requestBody"]["content"]
                        .as_object()
                        .and_then(|c| c.keys().next().cloned());
                    let b = match ct {
                        Some(ct) if ct.contains("json") => Some((ct, "{}".to_owned())),
                        Some(ct) => Some((ct, String::new())),
                        // No body where the document declares none.
                        None => None,
                    };
                    (b, false)
                }
            };
            let mut row = Vec::new();
            for cred in COLUMNS {
                let want = expect(&access, on_device, cred, names_a);
                let got = cx.call(
                    cred,
                    on_device,
                    method,
                    &path,
                    body.as_ref().map(|(c, d)| (c.as_str(), d.as_str())),
                );
                cells += 1;
                let mut ok = got.meets(want);
                let mut note = String::new();
                // A device's answer is about itself: never the other device's identity.
                if ok && want == Expect::Allowed && access == Access::Device {
                    let other = match cred {
                        Cred::DeviceA => Some(&fx.device_b),
                        Cred::DeviceB => Some(&fx.device_a),
                        _ => None,
                    };
                    if let Some(o) = other.filter(|o| got.body.contains(o.as_str())) {
                        ok = false;
                        note = format!(" naming {o}");
                    }
                }
                if !ok {
                    let body: String = got.body.chars().take(160).collect();
                    mismatches.push([
                        template.clone(),
                        method.to_uppercase(),
                        cred.label().into(),
                        want.label().into(),
                        format!(
                            "{}{note} ({}) {}",
                            got.cell(),
                            got.content_type,
                            body.replace('\n', " ")
                        ),
                    ]);
                }
                row.push(if ok {
                    got.cell()
                } else {
                    format!("**{}**", got.cell())
                });
            }
            let access = op["x-medsec-access"].as_str().unwrap_or("?").to_owned();
            rows.push((what, access, row));
        }
    }

    let mut md = String::new();
    writeln!(md, "# Access-control matrix\n").unwrap();
    writeln!(
        md,
        "Generated by `crates/medsec/tests/access_matrix.rs` from `/api/openapi.json` of a running \
         `medsec serve` (`MEDSEC_WRITE_ACCESS_MATRIX=1 cargo test -p medsec --test access_matrix`). \
         Every operation of the document, with its declared access (`x-medsec-access`), against \
         every credential; each cell is the HTTP status the server answered (`refused`: the TLS \
         handshake was refused, a request without a client certificate on the device listener). \
         API routes that name a device act on a third device; `/device/v1/update-status` names \
         a rollout of device A alone, so device B is refused there.\n"
    )
    .unwrap();
    writeln!(
        md,
        "Expected: no credential, a device certificate, an expired or a revoked token on the API: 401 \
         problem+json; a role below the required one: 403 problem+json; at or above it: the \
         handler runs (2xx, or a 4xx about the request or the object, never 401/403/5xx); \
         `device` operations: only a device certificate, and only about its own device; \
         `enrollment`: only an EST bootstrap credential, which no column holds; `public`: \
         anyone.\n"
    )
    .unwrap();
    write!(md, "| operation | access |").unwrap();
    for c in COLUMNS {
        write!(md, " {} |", c.label()).unwrap();
    }
    write!(md, "\n|---|---|").unwrap();
    for _ in COLUMNS {
        write!(md, "---|").unwrap();
    }
    md.push('\n');
    for (what, access, row) in &rows {
        writeln!(md, "| `{what}` | {access} | {} |", row.join(" | ")).unwrap();
    }
    writeln!(
        md,
        "\n{operations} operations on {} paths, {cells} cells.",
        paths.len()
    )
    .unwrap();

    if !mismatches.is_empty() {
        let mut t = String::from(
            "| route | method | credential | expected | got |\n|---|---|---|---|---|\n",
        );
        for m in &mismatches {
            writeln!(t, "| {} |", m.join(" | ")).unwrap();
        }
        panic!(
            "{} access-control mismatches in {cells} cells:\n{t}\nmatrix:\n{md}",
            mismatches.len()
        );
    }
    println!("{md}");
    println!(
        "setup {:.1} s, matrix {:.1} s",
        setup.as_secs_f64(),
        (started.elapsed() - setup).as_secs_f64()
    );
    if std::env::var_os("MEDSEC_WRITE_ACCESS_MATRIX").is_some_and(|v| v == "1") {
        let out =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/access-matrix.md");
        std::fs::write(&out, &md).unwrap();
        println!("wrote {}", out.display());
    }
    drop(srv);
}
