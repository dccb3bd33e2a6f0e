//! Post-market surveillance through `medsec serve` with real clients: devices post events over
//! mTLS (curl), a gateway relays syslog over TLS (openssl s_client), detections open incidents,
//! regulatory clocks run, researchers report over the public CVD endpoint.

mod common;
use common::server::*;
use common::*;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn config(env: &Env) {
    std::fs::create_dir_all(env.data()).unwrap();
    std::fs::write(
        env.data().join("medsec.toml"),
        r#"
[postmarket]
syslog_gateways = ["urn:medsec:device:demo-device:GW-1"]
cvd_per_hour = 1.0
cvd_burst = 3.0
manufacturer_address = "1 Example Street, Ottawa"
licences = { "demo-device" = "MDL-12345" }

[postmarket.security_txt]
contact = ["mailto:psirt@example.com", "https://example.com/cvd"]
policy = ["https://example.com/cvd-policy"]
"#,
    )
    .unwrap();
}

fn j(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn device_events_detection_incidents_clocks_and_cvd() {
    let env = Env::new();
    config(&env);
    let srv = start_with(&env, &["--syslog", "127.0.0.1:0"]);
    enroll(&env, &srv, "P-1", "p1");
    enroll(&env, &srv, "P-2", "p2");
    enroll(&env, &srv, "GW-1", "gw");
    let (admin, op, au) = (
        api_auth(&env, "admin"),
        api_auth(&env, "operator"),
        api_auth(&env, "auditor"),
    );
    let api = |p: &str| format!("https://{}/api/v1/{p}", srv.https);
    let events_url = format!("https://{}/device/v1/events", srv.device);
    let as_device = |name: &str, extra: &[&str]| curl_as_device(env.dir.path(), name, extra);
    let call = |extra: &[&str]| {
        let mut a = vec!["--cacert", "root.pem"];
        a.extend_from_slice(extra);
        curl(&env, &a)
    };
    let count = |device: &str| -> usize {
        let (body, code) = call(&[
            "-H",
            &au,
            &api(&format!(
                "events?device=urn:medsec:device:demo-device:{device}&limit=1000"
            )),
        ]);
        assert_eq!(code, "200", "{body}");
        j(&body)["events"].as_array().unwrap().len()
    };

    // Five authentication failures within ten minutes: the default rule fires once. One
    // event's details claim another device; the certificate decides.
    let now = OffsetDateTime::now_utc();
    let burst: Vec<Value> = (0..5)
        .map(|i| {
            let mut e = json!({
                "id": format!("af-{i}"),
                "time": rfc3339(now - time::Duration::minutes(6 - i)),
                "type": "auth-failure",
                "severity": "medium",
                "details": {"user": "service"}
            });
            if i == 0 {
                e["details"]["device"] = json!("urn:medsec:device:demo-device:P-2");
            }
            e
        })
        .collect();
    let batch = serde_json::to_string(&burst).unwrap();
    let (body, code) = as_device("p1", &["--data", &batch, &events_url]);
    assert_eq!(code, "200", "{body}");
    let v = j(&body);
    assert_eq!(v["accepted"], 5, "{v}");
    assert_eq!(v["incidents"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["incidents"][0]["opened"], true);
    assert_eq!(v["incidents"][0]["rule"], "auth-failure-burst");
    assert_eq!(count("P-1"), 5);
    assert_eq!(
        count("P-2"),
        0,
        "the body cannot move events to another device"
    );

    // A replayed batch adds nothing and opens nothing.
    let (body, code) = as_device("p1", &["--data", &batch, &events_url]);
    assert_eq!(code, "200", "{body}");
    let v = j(&body);
    assert_eq!(
        (v["accepted"].clone(), v["duplicates"].clone()),
        (json!(0), json!(5))
    );
    assert!(v["incidents"].as_array().unwrap().is_empty(), "{v}");

    // Malformed, identity-claiming, oversized and over-long batches: refused, nothing stored.
    let bad_time = r#"[{"id":"x1","time":"yesterday","type":"tamper","severity":"high"}]"#;
    let (body, code) = as_device("p1", &["--data", bad_time, &events_url]);
    assert_eq!(code, "400", "{body}");
    contains(&body, "[0].time");
    let claim = r#"[{"id":"x2","time":"2026-01-01T00:00:00Z","type":"tamper","severity":"high","device":"urn:medsec:device:demo-device:P-2"}]"#;
    let (body, code) = as_device("p1", &["--data", claim, &events_url]);
    assert_eq!(code, "400", "{body}");
    contains(&body, "client certificate");
    let huge = env.path("huge.json");
    std::fs::write(&huge, format!("[\"{}\"]", "a".repeat(600 * 1024))).unwrap();
    let (body, code) = as_device(
        "p1",
        &[
            "--data-binary",
            &format!("@{}", huge.display()),
            &events_url,
        ],
    );
    assert_eq!(code, "413", "{body}");
    contains(&body, "exceeds");
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"id": format!("m{i}"), "time": rfc3339(now), "type": "tamper", "severity": "high"}))
        .collect();
    std::fs::write(&huge, serde_json::to_string(&many).unwrap()).unwrap();
    let (body, code) = as_device(
        "p1",
        &[
            "--data-binary",
            &format!("@{}", huge.display()),
            &events_url,
        ],
    );
    assert_eq!(code, "413", "{body}");
    assert_eq!(count("P-1"), 5);
    // Without a client certificate there is no device, so no ingest.
    let (_, code) = call(&["--data", &batch, &events_url]);
    assert_eq!(code, "000");
    // Devices cannot use the API, and API tokens cannot post device events.
    let (_, code) = as_device("p1", &[&api("incidents")]);
    assert_eq!(code, "401");

    // P-2 bursts too: the open incident for the rule and model is updated, not duplicated.
    let burst2: Vec<Value> = (0..5)
        .map(|i| {
            json!({"id": format!("b{i}"), "time": rfc3339(now - time::Duration::minutes(5 - i)),
                        "type": "auth-failure", "severity": "medium"})
        })
        .collect();
    let (body, code) = as_device(
        "p2",
        &[
            "--data",
            &serde_json::to_string(&burst2).unwrap(),
            &events_url,
        ],
    );
    assert_eq!(code, "200", "{body}");
    assert_eq!(j(&body)["incidents"][0]["opened"], false, "{body}");
    let (body, _) = call(&["-H", &au, &api("incidents")]);
    let list = j(&body)["incidents"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1, "{body}");
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["devices"].as_object().unwrap().len(), 2, "{body}");

    // Syslog over TLS: the gateway relays for P-2 and reports for itself; P-2, not a
    // gateway, cannot speak for P-1. openssl s_client is the TLS client.
    let syslog = srv.syslog.clone().expect("syslog listener");
    let frame = |m: String| format!("{} {m}", m.len());
    // RFC 5424 allows at most microseconds.
    let ts = rfc3339(now.replace_nanosecond(0).unwrap());
    let relayed = frame(format!(
        "<34>1 {ts} gw01 relay - - [medsec@32473 id=\"s1\" type=\"tamper\" severity=\"critical\" device=\"urn:medsec:device:demo-device:P-2\"] enclosure opened"
    ));
    let own = frame(format!(
        "<36>1 {ts} gw01 relay - - [medsec@32473 id=\"s2\" type=\"unusual-connection\"] new peer"
    ));
    let send = |name: &str, data: String| {
        let mut c = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &syslog,
                "-cert",
                &format!("{name}.pem"),
                "-key",
                &format!("{name}.key"),
                "-CAfile",
                "root.pem",
                "-quiet",
                "-no_ign_eof",
            ])
            .current_dir(env.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut stdin = c.stdin.take().unwrap();
        stdin.write_all(data.as_bytes()).unwrap();
        // Give the handshake and the write time before EOF closes the session.
        std::thread::sleep(Duration::from_millis(500));
        drop(stdin);
        c.wait().unwrap();
    };
    send("gw", format!("{relayed}{own}"));
    let forged = frame(format!(
        "<34>1 {ts} p2 x - - [medsec@32473 id=\"s3\" type=\"tamper\" device=\"urn:medsec:device:demo-device:P-1\"] forged"
    ));
    send("p2", forged);
    let deadline = Instant::now() + Duration::from_secs(10);
    while count("GW-1") < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(count("GW-1"), 1);
    assert_eq!(
        count("P-2"),
        6,
        "5 over HTTPS and one relayed by the gateway"
    );
    assert_eq!(
        count("P-1"),
        5,
        "a non-gateway cannot report for another device"
    );
    let (body, _) = call(&[
        "-H",
        &au,
        &api("events?device=urn:medsec:device:demo-device:P-2&limit=1"),
    ]);
    let e = &j(&body)["events"][0];
    assert_eq!(e["source"], "syslog", "{e}");
    assert_eq!(
        e["event"]["details"]["gateway"],
        "urn:medsec:device:demo-device:GW-1"
    );
    let (body, _) = call(&["-H", &au, &api("incidents")]);
    assert!(
        j(&body)["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["rule"] == "tamper" && i["devices"].as_object().unwrap().len() == 1),
        "the relayed tamper event opened its own incident: {body}"
    );

    // Incident workflow and reportability with the operator; auditors read only.
    let post = |auth: &str, path: &str, body: Value| {
        call(&[
            "-X",
            "POST",
            "-H",
            auth,
            "-H",
            "Content-Type: application/json",
            "--data",
            &body.to_string(),
            &api(path),
        ])
    };
    let (_, code) = post(
        &au,
        &format!("incidents/{id}/status"),
        json!({"status": "triage"}),
    );
    assert_eq!(code, "403");
    let (body, code) = post(
        &op,
        &format!("incidents/{id}/status"),
        json!({"status": "contained"}),
    );
    assert_eq!(code, "409", "new -> contained skips triage: {body}");
    let (body, code) = post(
        &op,
        &format!("incidents/{id}/status"),
        json!({"status": "triage"}),
    );
    assert_eq!(code, "200", "{body}");
    let aware = now - time::Duration::days(31);
    let (body, code) = post(
        &op,
        &format!("incidents/{id}/reportability"),
        json!({
            "reportable": true,
            "obligations": ["mdr-could-lead-if-recurred", "fda-customer-notification", "nope"],
            "rationale": "credential attack could recur", "aware_at": rfc3339(aware)
        }),
    );
    assert_eq!(code, "400", "{body}");
    let (body, code) = post(
        &op,
        &format!("incidents/{id}/reportability"),
        json!({
            "reportable": true,
            "obligations": ["mdr-could-lead-if-recurred", "foreign-risk-notice"],
            "rationale": "credential attack could lead to serious deterioration if it recurred",
            "aware_at": rfc3339(aware)
        }),
    );
    assert_eq!(code, "200", "{body}");
    let v = j(&body);
    assert_eq!(v["clocks"].as_array().unwrap().len(), 2, "{v}");
    assert!(
        v["clocks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["overdue"] == true),
        "{v}"
    );
    let (body, code) = post(
        &op,
        &format!("incidents/{id}/obligations/foreign-risk-notice/met"),
        json!({"note": "notice sent to Health Canada"}),
    );
    assert_eq!(code, "200", "{body}");
    let (body, code) = call(&["-H", &au, &api("clocks?due_within_days=7")]);
    assert_eq!(code, "200", "{body}");
    let v = j(&body);
    assert_eq!(v["overdue"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["overdue"][0]["obligation"], "mdr-could-lead-if-recurred");
    assert_eq!(v["met"].as_array().unwrap().len(), 1, "{v}");
    let (body, code) = call(&[
        "-H",
        &au,
        &api(&format!("incidents/{id}/report?kind=preliminary")),
    ]);
    assert_eq!(code, "200", "{body}");
    for needle in [
        "Preliminary mandatory problem report",
        "MDL-12345",
        "1 Example Street, Ottawa",
        "urn:medsec:device:demo-device:P-1",
        &rfc3339(aware.replace_nanosecond(0).unwrap()),
        "Medical Devices Regulations s.59-61.1 (30 days)",
    ] {
        contains(&body, needle);
    }

    // Detection rules: admins change them; a broken file names the place and changes nothing.
    let rules_url = api("detection-rules");
    let (body, code) = call(&["-H", &au, &rules_url]);
    assert_eq!(code, "200", "{body}");
    let put = |auth: &str, b: &str| call(&["-X", "PUT", "-H", auth, "--data", b, &rules_url]);
    let (_, code) = put(&op, &body);
    assert_eq!(code, "403");
    let broken = body.replacen("\"count\": 5", "\"count\": 0", 1);
    let (b2, code) = put(&admin, &broken);
    assert_eq!(code, "400", "{b2}");
    contains(&b2, "condition.count");
    let (b2, code) = put(&admin, &body);
    assert_eq!(code, "200", "{b2}");
    assert_eq!(j(&b2)["version"], 1);

    // CVD: the public intake returns a tracking id and nothing else; reading needs a token.
    let cvd = format!("https://{}/cvd/reports", srv.https);
    let report = json!({"title": "Telnet open on port 23", "description": "default credentials work",
                        "contact": "mailto:researcher@example.org", "credit": "A. Researcher"});
    let (body, code) = call(&[
        "-H",
        "Content-Type: application/json",
        "--data",
        &report.to_string(),
        &cvd,
    ]);
    assert_eq!(code, "201", "{body}");
    let v = j(&body);
    let tid = v["tracking_id"].as_str().unwrap().to_owned();
    assert!(
        tid.starts_with("CVD-") && v.get("description").is_none(),
        "{v}"
    );
    let (_, code) = call(&[&api(&format!("cvd/reports/{tid}"))]);
    assert_eq!(code, "401");
    let (_, code) = call(&[&format!("{cvd}/{tid}")]);
    assert_eq!(code, "404", "no public read of reports");
    let (_, code) = call(&[&cvd]);
    assert_eq!(code, "405", "no public listing of reports");
    let (body, code) = call(&["-H", &au, &api(&format!("cvd/reports/{tid}"))]);
    assert_eq!(code, "200", "{body}");
    assert_eq!(j(&body)["submission"]["credit"], "A. Researcher");
    let (body, code) = call(&[
        "--data",
        "{\"title\":\"x\"}",
        "-H",
        "Content-Type: application/json",
        &cvd,
    ]);
    assert_eq!(code, "400", "{body}");
    std::fs::write(
        &huge,
        format!(
            "{{\"title\":\"t\",\"description\":\"{}\"}}",
            "a".repeat(70 * 1024)
        ),
    )
    .unwrap();
    let (_, code) = call(&["--data-binary", &format!("@{}", huge.display()), &cvd]);
    assert_eq!(code, "413");
    // Burst of 3 per address: the first was accepted above, the 400 and 413 spent two more.
    let (body, code) = call(&[
        "-H",
        "Content-Type: application/json",
        "--data",
        &report.to_string(),
        &cvd,
    ]);
    assert_eq!(code, "429", "{body}");
    let (body, _) = call(&["-H", &au, &api("cvd/reports")]);
    assert_eq!(
        j(&body)["reports"].as_array().unwrap().len(),
        1,
        "the flood stored nothing"
    );
    let (body, code) = post(
        &op,
        &format!("cvd/reports/{tid}/status"),
        json!({"status": "acknowledged"}),
    );
    assert_eq!(code, "200", "{body}");
    let (body, code) = post(
        &op,
        &format!("cvd/reports/{tid}/links"),
        json!({"findings": ["CVE-2024-0001"], "incidents": [id]}),
    );
    assert_eq!(code, "200", "{body}");
    let (body, _) = call(&["-H", &au, &api(&format!("incidents/{id}"))]);
    contains(&body, &tid);

    // security.txt from the configuration (RFC 9116 fields).
    let (body, code) = call(&[&format!("https://{}/.well-known/security.txt", srv.https)]);
    assert_eq!(code, "200", "{body}");
    contains(&body, "Contact: mailto:psirt@example.com\n");
    contains(&body, "Expires: ");
    contains(&body, "Policy: https://example.com/cvd-policy\n");

    // The CSAF provider metadata names this server's directory; nothing outside it is served.
    let (body, code) = call(&[&format!(
        "https://{}/.well-known/csaf/provider-metadata.json",
        srv.https
    )]);
    assert_eq!(code, "200", "{body}");
    let meta = j(&body);
    assert_eq!(meta["role"], "csaf_provider");
    contains(
        meta["distributions"][0]["directory_url"].as_str().unwrap(),
        "/.well-known/csaf/white/",
    );
    let (_, code) = call(&[&format!(
        "https://{}/.well-known/csaf/white/index.txt",
        srv.https
    )]);
    assert_eq!(code, "200");
    let (_, code) = call(&[
        "--path-as-is",
        &format!(
            "https://{}/.well-known/csaf/white/../../../etc/passwd",
            srv.https
        ),
    ]);
    assert_eq!(code, "404");

    // A retired device's revoked certificate is refused in the handshake, and that use is
    // itself recorded: the server reports it for the device, and the rule opens an incident.
    let (body, code) = post(
        &op,
        "devices/urn:medsec:device:demo-device:P-1/retire",
        json!({}),
    );
    assert_eq!(code, "200", "{body}");
    let (body, code) = as_device("p1", &["--data", "[]", &events_url]);
    assert_eq!(code, "000", "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let revoked_use = loop {
        let (body, _) = call(&["-H", &au, &api("incidents?open=true")]);
        let found = j(&body)["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["rule"] == "revoked-certificate-use")
            .cloned();
        if let Some(i) = found {
            break i;
        }
        assert!(
            Instant::now() < deadline,
            "no incident for the revoked certificate: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        revoked_use["devices"]
            .as_object()
            .unwrap()
            .contains_key("urn:medsec:device:demo-device:P-1"),
        "{revoked_use}"
    );

    drop(srv);
    // Every change above is in the audit chain, and it verifies.
    let out = env.ok(&["audit", "verify"]);
    contains(&out, "intact");
    let log = env.ok(&["--json", "audit", "list", "--limit", "1000"]);
    for action in [
        "incident.opened",
        "incident.changed",
        "cvd.received",
        "detection-rules.changed",
    ] {
        contains(&log, action);
    }
}
