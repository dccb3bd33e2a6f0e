//! The binary on PostgreSQL (`--database` / MEDSEC_DATABASE_URL): the CA lifecycle through the
//! CLI and `medsec serve` answering EST and OCSP; `medsec store migrate` copying a seeded SQLite
//! dataset verbatim (counts, audit head, the same answers from the CLI, new rows not colliding)
//! and refusing a non-empty target; `medsec backup` / `restore` round trips on SQLite (a
//! tampered backup refused by its audit chain) and on PostgreSQL (pg_dump / pg_restore).
//!
//! Each test takes its own database on one throwaway cluster (`pg_cluster`), stopped when the
//! test process ends.

mod common;
use common::server::*;
use common::*;

use medsec_store::pg_cluster::Cluster;
use serde_json::{Value, json};

fn fresh_db() -> String {
    Cluster::fresh_database().expect("PostgreSQL server programs (apt-get install postgresql)")
}

/// An environment whose every CLI run and server uses `url`.
fn pg_env(url: &str) -> Env {
    let mut env = Env::new();
    use_db(&mut env, Some(url));
    env
}

/// Points the environment's later runs at `url` (None: the data directory's SQLite). The data
/// directory stays the same: it holds the CA keys whatever the database.
fn use_db(env: &mut Env, url: Option<&str>) {
    env.extra_env.retain(|(k, _)| k != "MEDSEC_DATABASE_URL");
    if let Some(u) = url {
        env.extra_env
            .push(("MEDSEC_DATABASE_URL".into(), u.to_owned()));
    }
}

fn serial_of(env: &Env, pem: &str) -> String {
    env.openssl_ok(&["x509", "-in", pem, "-noout", "-serial"])
        .trim()
        .trim_start_matches("serial=")
        .to_owned()
}

#[test]
fn cli_ca_lifecycle_on_postgres() {
    let url = fresh_db();
    let mut env = Env::new();
    // The flag itself for `ca init`; the environment variable for the rest.
    env.ok(&[
        "--database",
        &url,
        "ca",
        "init",
        "--organization",
        "Acme Medical",
    ]);
    use_db(&mut env, Some(&url));
    env.ok(&[
        "profile",
        "set",
        "--name",
        "pump",
        "--model",
        "pump-x2",
        "--key-types",
        "ecdsa-p256",
    ]);
    let csr = env.openssl_csr("d1", "p256", &[]);
    let issued = env.json(&[
        "cert",
        "issue",
        "--profile",
        "pump",
        "--csr",
        csr.to_str().unwrap(),
        "--device",
        "PG-1",
    ]);
    let serial = issued["serial"].as_str().unwrap().to_owned();
    env.ok(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    let v = env.json(&["audit", "verify"]);
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["entries"].as_u64().unwrap() >= 4, "{v}");
    let certs = env.json(&["cert", "list"]);
    assert_eq!(certs[0]["status"], "revoked", "{certs}");
    // Only the database moved: no SQLite file was created, the keys are in the data directory.
    assert!(!env.db().exists(), "a SQLite database was created");
    assert!(env.data().join("keys").is_dir());
    // A URL that is not PostgreSQL is refused without echoing it.
    let (code, err) = env.fail(&["--database", "mysql://u:secret@h/db", "cert", "list"]);
    assert_eq!(code, 1);
    contains(&err, "\"mysql\" is not supported");
    assert!(!err.contains("secret"), "{err}");
    // medsec.toml names the database too ([store], or [server]); both set must agree.
    use_db(&mut env, None);
    let toml = env.data().join("medsec.toml");
    std::fs::write(&toml, format!("[store]\ndatabase_url = \"{url}\"\n")).unwrap();
    assert_eq!(env.json(&["cert", "list"]), certs);
    std::fs::write(
        &toml,
        format!(
            "[store]\ndatabase_url = \"{url}\"\n[server]\ndatabase_url = \"postgres://other/db\"\n"
        ),
    )
    .unwrap();
    let (code, err) = env.fail(&["cert", "list"]);
    assert_eq!(code, 1);
    contains(&err, "differ");
    // Without any URL the data directory's (empty) SQLite database is used.
    std::fs::remove_file(&toml).unwrap();
    assert_eq!(env.json(&["cert", "list"]), json!([]));
}

#[test]
fn serve_on_postgres_answers_est_and_ocsp() {
    let url = fresh_db();
    let env = pg_env(&url);
    let srv = start(&env);
    enroll(&env, &srv, "PGS-1", "dev");
    let ocsp_url = format!("http://{}/ocsp", srv.http);
    let ocsp = || {
        env.openssl_ok(&[
            "ocsp",
            "-issuer",
            "chain.pem",
            "-cert",
            "dev.pem",
            "-url",
            &ocsp_url,
            "-CAfile",
            "all.pem",
        ])
    };
    let first = ocsp();
    contains(&first, "Response verify OK");
    contains(&first, "dev.pem: good");
    // Revoked by another process sharing the database: the server sees it.
    let serial = serial_of(&env, "dev.pem");
    env.ok(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    let mut after = ocsp();
    for _ in 0..20 {
        if after.contains("dev.pem: revoked") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        after = ocsp();
    }
    contains(&after, "dev.pem: revoked");
    // The PostgreSQL pool's gauges are on /metrics (16 connections at most by default).
    let (metrics, code) = curl(&env, &[&format!("http://{}/metrics", srv.http)]);
    assert_eq!(code, "200");
    contains(&metrics, "medsec_db_pool_max_connections 16");
    contains(&metrics, "medsec_db_pool_connections{state=\"idle\"}");
    // The CA the server created on the empty database lives there, not in SQLite.
    assert!(!env.db().exists());
    assert_eq!(env.json(&["audit", "verify"])["ok"], true);
}

fn write(env: &Env, name: &str, v: &Value) -> String {
    std::fs::write(env.path(name), v.to_string()).unwrap();
    env.p(name)
}

/// A SQLite dataset touching every domain: devices and certificates (renewed, revoked),
/// firmware with an SBOM, an advisory, findings and a triage decision, a TUF release and a
/// rollout, device events, an incident, a CVD report, a dashboard user and an API token.
fn seed_sqlite(env: &mut Env) {
    env.init_ca("ecdsa-p256");
    let (s1, _) = env.issue("d1", "p256", "SN-1");
    let (s2, _) = env.issue("d2", "p256", "SN-2");
    env.ok(&["cert", "revoke", &s2, "--reason", "keyCompromise"]);
    env.ok(&["cert", "renew", &s1]);
    for v in ["1.0.0", "1.0.1"] {
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
    let sbom = write(
        env,
        "sbom.cdx.json",
        &json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": [
            {"type": "library", "name": "lodash", "version": "4.17.20", "purl": "pkg:npm/lodash@4.17.20"},
            {"type": "library", "name": "minimist", "version": "1.2.0", "purl": "pkg:npm/minimist@1.2.0"}]}),
    );
    env.ok(&[
        "sbom",
        "import",
        "--model",
        "pump-x2",
        "--version",
        "1.0.0",
        &sbom,
    ]);
    let osv = |id: &str, cve: &str, pkg: &str, fixed: &str| {
        json!({"schema_version": "1.6.0", "id": id, "modified": "2024-01-02T03:04:05.678901Z",
               "aliases": [cve], "summary": format!("{pkg} flaw"),
               "affected": [{"package": {"ecosystem": "npm", "name": pkg},
                             "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]})
    };
    std::fs::create_dir_all(env.path("osv")).unwrap();
    write(
        env,
        "osv/a.json",
        &osv("GHSA-35jh-r3h4-6jhm", "CVE-2021-23337", "lodash", "4.17.21"),
    );
    write(
        env,
        "osv/b.json",
        &osv("GHSA-xvch-5gv4-984h", "CVE-2021-44906", "minimist", "1.2.6"),
    );
    env.ok(&["vuln", "import", "--osv", &env.p("osv")]);
    env.ok(&["vuln", "match"]);
    env.ok(&[
        "vuln",
        "triage",
        "--model",
        "pump-x2",
        "--version",
        "1.0.0",
        "--vuln",
        "CVE-2021-44906",
        "--state",
        "not_affected",
        "--justification",
        "vulnerable_code_not_in_execute_path",
        "--reason",
        "argument parsing is not used",
    ]);
    env.ok(&[
        "device",
        "set-firmware",
        "urn:medsec:device:pump-x2:SN-1",
        "1.0.0",
    ]);
    env.ok(&["tuf", "init"]);
    std::fs::write(env.path("fw.bin"), b"firmware 1.0.1").unwrap();
    env.ok(&[
        "release",
        "publish",
        "--model",
        "pump-x2",
        "--version",
        "1.0.1",
        "--security-version",
        "2",
        &env.p("fw.bin"),
    ]);
    env.ok(&[
        "rollout",
        "create",
        "--model",
        "pump-x2",
        "--version",
        "1.0.1",
        "--cohort",
        "percent:100",
    ]);
    env.ok(&[
        "incident",
        "open",
        "--model",
        "pump-x2",
        "--title",
        "field complaint",
    ]);
    env.ok(&["apitoken", "create", "--name", "ci", "--role", "auditor"]);
    env.extra_env
        .push(("MEDSEC_USER_PASSWORD".into(), "operator password 1".into()));
    env.ok(&["user", "create", "olivia", "--role", "operator"]);
    env.extra_env.retain(|(k, _)| k != "MEDSEC_USER_PASSWORD");

    // Through the server: a device enrolls over EST, posts events; a researcher reports.
    let srv = start(env);
    let tok = env.json(&["token", "create", "--profile", "pump", "--device", "EV-1"])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let csr = b64_csr(env, "ev", "p256", "/CN=EV-1");
    let (body, code) = est_enroll(
        env,
        &format!("https://{}/.well-known/est/simpleenroll", srv.https),
        "EV-1",
        &tok,
        &csr,
    );
    assert_eq!(code, "200", "{body}");
    p7_to_pem(env, &body, "ev.pem");
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let batch = json!([
        {"id": "e-1", "time": now, "type": "auth-failure", "severity": "medium", "details": {}},
        {"id": "e-2", "time": now, "type": "unusual-connection", "severity": "low", "details": {}}
    ])
    .to_string();
    let (body, code) = curl(
        env,
        &[
            "--cacert",
            "root.pem",
            "--cert",
            "ev.pem",
            "--key",
            "ev.key",
            "-H",
            "Content-Type: application/json",
            "--data",
            &batch,
            &format!("https://{}/device/v1/events", srv.device),
        ],
    );
    assert_eq!(code, "200", "{body}");
    let report = json!({"title": "Telnet open", "description": "default credentials work",
                        "contact": "mailto:r@example.org"});
    let (body, code) = curl(
        env,
        &[
            "--cacert",
            "root.pem",
            "-H",
            "Content-Type: application/json",
            "--data",
            &report.to_string(),
            &format!("https://{}/cvd/reports", srv.https),
        ],
    );
    assert_eq!(code, "201", "{body}");
    drop(srv);
}

/// What the CLI answers about the dataset, for comparing the two back ends.
fn views(env: &Env) -> Vec<(String, Value)> {
    [
        &["cert", "list"][..],
        &["device", "list"],
        &["vuln", "findings", "--all"],
        &["rollout", "list"],
        &["incident", "list"],
        &["cvd", "list"],
        &["events", "list"],
        &["user", "list"],
        &["firmware", "list"],
    ]
    .iter()
    .map(|a| (a.join(" "), env.json(a)))
    .collect()
}

fn sqlite_head(env: &Env) -> (i64, String) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", env.db().display()))
            .await
            .unwrap();
        let h: (i64, String) = sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        h
    })
}

#[test]
fn sqlite_dataset_migrates_to_postgres_verbatim() {
    let mut env = Env::new();
    seed_sqlite(&mut env);
    let entries = env.json(&["audit", "verify"])["entries"].as_u64().unwrap();
    let before = views(&env);
    let head = sqlite_head(&env);

    let url = fresh_db();
    let report = env.json(&["store", "migrate", "--to", &url]);
    assert_eq!(report["ok"], true, "{report}");
    let tables = report["tables"].as_array().unwrap();
    for t in tables {
        if t["source"].is_i64() {
            assert_eq!(t["source"], t["target"], "{t}");
        }
    }
    let count = |name: &str| {
        tables
            .iter()
            .find(|t| t["table"] == name)
            .unwrap_or_else(|| panic!("no {name} in {report}"))["target"]
            .as_i64()
            .unwrap()
    };
    for t in [
        "certs",
        "devices",
        "findings",
        "vex_decisions",
        "releases",
        "rollouts",
        "pm_events",
        "pm_incidents",
        "pm_cvd_reports",
        "users",
        "api_tokens",
        "sbom_components",
        "advisories",
        "fleet_devices",
    ] {
        assert!(count(t) > 0, "{t} was not seeded: {report}");
    }
    assert_eq!(count("audit_log") as u64, entries);
    assert_eq!(report["audit"]["entries"].as_u64(), Some(entries));
    assert_eq!(report["audit"]["head"]["seq"], json!(head.0));
    assert_eq!(report["audit"]["head"]["hash"], json!(head.1));
    use_db(&mut env, Some(&url));
    let pg = &env;

    // The PostgreSQL side verifies, with the same head, and answers the CLI the same.
    let v = pg.json(&["audit", "verify"]);
    assert_eq!(v["entries"].as_u64(), Some(entries), "{v}");
    let listed = pg.json(&["audit", "list", "--after", &(head.0 - 1).to_string()]);
    assert_eq!(listed[0]["hash"], json!(head.1), "{listed}");
    for ((what, a), (_, b)) in before.iter().zip(views(pg).iter()) {
        assert_eq!(a, b, "`{what}` differs after the migration");
    }
    let certs = pg.json(&["cert", "list"]);
    assert!(
        certs
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["status"] == "revoked" && c["reason"] == "keyCompromise"),
        "{certs}"
    );

    // New rows on PostgreSQL continue the numbering instead of colliding with copied ones.
    let inc = pg.json(&[
        "incident", "open", "--model", "pump-x2", "--title", "second",
    ]);
    assert!(inc.to_string().contains("INC-000002"), "{inc}");
    pg.ok(&[
        "vuln",
        "triage",
        "--model",
        "pump-x2",
        "--version",
        "1.0.0",
        "--vuln",
        "CVE-2021-23337",
        "--state",
        "affected",
        "--reason",
        "reachable",
        "--action",
        "update to 1.0.1",
    ]);
    pg.issue("d3", "p256", "SN-3");
    assert_eq!(pg.json(&["audit", "verify"])["ok"], true);
    // The SQLite file is untouched.
    use_db(&mut env, None);
    assert_eq!(
        env.json(&["audit", "verify"])["entries"].as_u64(),
        Some(entries)
    );

    // A second migration into the same (now non-empty) database is refused.
    let (code, err) = env.fail(&["store", "migrate", "--to", &url]);
    assert_eq!(code, 4, "{err}");
    contains(&err, "not empty");
    // And so is a target that is not PostgreSQL.
    let (code, err) = env.fail(&["store", "migrate", "--to", "sqlite://x.db"]);
    assert_eq!(code, 1);
    contains(&err, "not supported");
}

#[test]
fn migrate_human_report_lists_tables() {
    let env = Env::new();
    env.init_ca("ecdsa-p256");
    env.issue("d1", "p256", "SN-1");
    let out = env.ok(&["store", "migrate", "--to", &fresh_db()]);
    for t in [
        "cas",
        "certs",
        "audit_log",
        "fleet_devices",
        "pm_incident_ids",
    ] {
        contains(&out, t);
    }
    contains(&out, "verified on PostgreSQL");
}

fn tamper(db: &std::path::Path) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query("UPDATE audit_log SET actor = 'cli:someone-else' WHERE seq = 2")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    })
}

#[test]
fn sqlite_backup_restore_round_trip_and_tampered_backup_refused() {
    let env = Env::new();
    env.init_ca("ecdsa-p256");
    let (s1, _) = env.issue("d1", "p256", "SN-1");
    env.ok(&["cert", "revoke", &s1, "--reason", "superseded"]);
    let at_backup = env.json(&["cert", "list"]);
    let entries = env.json(&["audit", "verify"])["entries"].as_u64().unwrap();

    let b = env.json(&["backup", "--out", &env.p("b1.db")]);
    assert_eq!(b["audit"]["entries"].as_u64(), Some(entries), "{b}");
    assert_eq!(b["audit"]["verified"], true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env.path("b1.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "backup readable by others: {mode:o}");
    }
    // A backup never overwrites a file.
    let (code, err) = env.fail(&["backup", "--out", &env.p("b1.db")]);
    assert_eq!(code, 1);
    contains(&err, "never overwrites");

    // Changes after the backup...
    env.issue("d2", "p256", "SN-2");
    assert_eq!(env.json(&["cert", "list"]).as_array().unwrap().len(), 2);
    // ...are not replaced without --force.
    let (code, err) = env.fail(&["restore", "--from", &env.p("b1.db")]);
    assert_eq!(code, 4, "{err}");
    contains(&err, "--force");

    // A tampered backup is refused by its audit chain and changes nothing.
    std::fs::copy(env.path("b1.db"), env.path("bad.db")).unwrap();
    tamper(&env.path("bad.db"));
    let (code, err) = env.fail(&["restore", "--from", &env.p("bad.db"), "--force"]);
    assert_eq!(code, 3, "{err}");
    contains(&err, "BROKEN");
    assert_eq!(env.json(&["cert", "list"]).as_array().unwrap().len(), 2);
    assert!(!env.data().join("medsec.db.before-restore").exists());
    // So is a file that is not a database.
    std::fs::write(env.path("junk.db"), b"not a database at all").unwrap();
    let (code, err) = env.fail(&["restore", "--from", &env.p("junk.db"), "--force"]);
    assert_eq!(code, 1);
    contains(&err, "junk.db");

    // The round trip.
    let r = env.json(&["restore", "--from", &env.p("b1.db"), "--force"]);
    assert_eq!(r["audit"]["entries"].as_u64(), Some(entries), "{r}");
    assert_eq!(env.json(&["cert", "list"]), at_backup);
    assert_eq!(
        env.json(&["audit", "verify"])["entries"].as_u64(),
        Some(entries)
    );
    assert!(env.data().join("medsec.db.before-restore").exists());
    // The restored database takes new work (the keys never left the data directory).
    env.issue("d3", "p256", "SN-3");
    assert_eq!(env.json(&["audit", "verify"])["ok"], true);
}

#[test]
fn postgres_backup_restore_round_trip() {
    let a = fresh_db();
    let mut env = pg_env(&a);
    env.init_ca("ecdsa-p256");
    let (s1, _) = env.issue("d1", "p256", "SN-1");
    env.ok(&["cert", "revoke", &s1, "--reason", "keyCompromise"]);
    env.issue("d2", "p256", "SN-2");
    let certs = env.json(&["cert", "list"]);
    let entries = env.json(&["audit", "verify"])["entries"].as_u64().unwrap();
    let b = env.json(&["backup", "--out", &env.p("pg.dump")]);
    assert_eq!(b["backend"], "postgres", "{b}");

    let target = fresh_db();
    let r = env.json(&[
        "--database",
        &target,
        "restore",
        "--from",
        &env.p("pg.dump"),
    ]);
    assert_eq!(r["audit"]["entries"].as_u64(), Some(entries), "{r}");
    use_db(&mut env, Some(&target));
    assert_eq!(env.json(&["cert", "list"]), certs);
    assert_eq!(
        env.json(&["audit", "verify"])["entries"].as_u64(),
        Some(entries)
    );
    // The restored database takes new work with the data directory's keys.
    env.issue("d3", "p256", "SN-3");
    use_db(&mut env, Some(&a));

    // Restoring into a database that holds data is refused.
    let (code, err) = env.fail(&["restore", "--from", &env.p("pg.dump")]);
    assert_eq!(code, 4, "{err}");
    contains(&err, "not empty");
    // A file that is not a pg_dump archive is refused before the target is touched.
    std::fs::write(env.path("junk.dump"), b"junk").unwrap();
    let empty = fresh_db();
    let (code, err) = env.fail(&[
        "--database",
        &empty,
        "restore",
        "--from",
        &env.p("junk.dump"),
    ]);
    assert_eq!(code, 1);
    contains(&err, "not a pg_dump archive");
}
