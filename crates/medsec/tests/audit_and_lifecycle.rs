//! Lifecycle through the CLI, the audit chain under tampering, and crash consistency.

mod common;
use common::*;

fn sql(db: &std::path::Path, statement: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(&mut c)
            .await
            .unwrap();
    });
}

fn scalar(db: &std::path::Path, query: &str) -> i64 {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query_scalar(sqlx::AssertSqlSafe(query.to_owned()))
            .fetch_one(&mut c)
            .await
            .unwrap()
    })
}

#[test]
fn lifecycle_renew_rekey_revoke_retire() {
    let env = Env::new();
    env.init_ca("ecdsa-p256,ed25519");
    let (s1, _) = env.issue("a", "p256", "SN-1");
    let renewed = env.json(&["cert", "renew", &s1]);
    assert_eq!(renewed["kind"], "renew");
    assert_eq!(renewed["replaces"], s1.as_str());
    let s2 = renewed["serial"].as_str().unwrap().to_owned();
    // Rekey with no overlap revokes the old certificate as superseded at once.
    let csr = env.openssl_csr("b", "ed25519", &[]);
    let rk = env.json(&[
        "cert",
        "rekey",
        &s2,
        "--csr",
        csr.to_str().unwrap(),
        "--overlap-days",
        "0",
    ]);
    assert_eq!(rk["key_algorithm"], "ed25519");
    let old = env.json(&["cert", "show", &s2]);
    assert_eq!(old["status"], "revoked");
    assert_eq!(old["reason"], "superseded");
    // Rekey with the profile's overlap schedules the revocation instead.
    let s3 = rk["serial"].as_str().unwrap().to_owned();
    let csr = env.openssl_csr("c", "p256", &[]);
    let rk2 = env.json(&["cert", "rekey", &s3, "--csr", csr.to_str().unwrap()]);
    assert!(rk2["old_revoked_at"].is_string());
    assert_eq!(env.json(&["cert", "show", &s3])["status"], "valid");
    // A rekey must bring a new key.
    let (code, err) = env.fail(&[
        "cert",
        "rekey",
        rk2["serial"].as_str().unwrap(),
        "--csr",
        csr.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    contains(&err, "new key");

    // keyCompromise with an invalidity date; a second revocation is refused.
    env.ok(&[
        "cert",
        "revoke",
        &s1,
        "--reason",
        "keyCompromise",
        "--invalidity-date",
        "2026-01-01T00:00:00Z",
    ]);
    let (_, err) = env.fail(&["cert", "revoke", &s1, "--reason", "superseded"]);
    contains(&err, "already revoked");
    let (_, err) = env.fail(&["cert", "revoke", &s1, "--reason", "because"]);
    contains(&err, "revocation reason");
    let (_, err) = env.fail(&["cert", "revoke", "00ff", "--reason", "keyCompromise"]);
    contains(&err, "not found");

    // Expiry queries.
    assert!(
        !env.json(&["cert", "expiring", "--days", "400"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        env.json(&["cert", "expiring", "--days", "1"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Retire: every certificate revoked with cessationOfOperation, never again enrolled.
    let urn = "urn:medsec:device:pump-x2:SN-1";
    let r = env.json(&["device", "retire", urn]);
    assert!(!r["revoked"].as_array().unwrap().is_empty());
    for c in env
        .json(&["cert", "list", "--device", urn])
        .as_array()
        .unwrap()
    {
        assert_eq!(c["status"], "revoked", "{c}");
    }
    let d = env.json(&["device", "show", urn]);
    assert_eq!(d["status"], "retired");
    let csr = env.openssl_csr("d", "p256", &[]);
    let err = env.issue_fails(&csr, "SN-1");
    contains(&err, "retired");
    let (_, err) = env.fail(&["device", "retire", urn]);
    contains(&err, "retired");
    let v = env.json(&["audit", "verify"]);
    assert_eq!(v["ok"], true);
}

#[test]
fn audit_verify_names_the_edited_or_removed_entry() {
    let env = Env::new();
    env.init_ca("ecdsa-p256");
    let (s1, _) = env.issue("a", "p256", "SN-1");
    env.issue("b", "p256", "SN-2");
    env.ok(&["cert", "revoke", &s1, "--reason", "keyCompromise"]);
    let total = env.json(&["audit", "verify"])["entries"].as_i64().unwrap();
    assert!(total >= 8);

    let pristine = env.path("pristine");
    copy_dir(&env.data(), &pristine);
    let cases: Vec<(String, String)> = vec![
        (
            "UPDATE audit_log SET subject = 'someone-else' WHERE seq = 3".into(),
            "#3".into(),
        ),
        (
            "UPDATE audit_log SET details = '{}' WHERE seq = 5".into(),
            "#5".into(),
        ),
        (
            "UPDATE audit_log SET actor = 'cli:mallory' WHERE seq = 1".into(),
            "#1".into(),
        ),
        ("DELETE FROM audit_log WHERE seq = 4".into(), "#4".into()),
        (
            format!("DELETE FROM audit_log WHERE seq = {total}"),
            format!("#{total}"),
        ),
        // Re-hashing the edited entry does not help: the next link breaks.
        (
            "UPDATE audit_log SET subject = 'x', hash = 'y' WHERE seq = 2".into(),
            "#2".into(),
        ),
    ];
    for (stmt, want) in cases {
        std::fs::remove_dir_all(env.data()).unwrap();
        copy_dir(&pristine, &env.data());
        sql(&env.db(), &stmt);
        let o = env.run(&["audit", "verify"]);
        assert_eq!(o.status.code(), Some(3), "{stmt}");
        let err = String::from_utf8_lossy(&o.stderr);
        contains(&err, "BROKEN");
        contains(&err, &format!("audit entry {want}:"));
    }
    // Untouched, it verifies.
    std::fs::remove_dir_all(env.data()).unwrap();
    copy_dir(&pristine, &env.data());
    assert_eq!(env.json(&["audit", "verify"])["ok"], true);
}

/// SIGKILL in the middle of a stream of issuances: every certificate that is stored has its
/// device row and its audit entry, the chain verifies, and nothing half-written remains.
#[test]
fn kill_during_issuance_leaves_only_complete_records() {
    let env = Env::new();
    let dir = env.path("bench");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_medsec"))
        .args([
            "bench",
            "issue",
            "--count",
            "200000",
            "--concurrency",
            "32",
            "--dir",
        ])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let db = dir.join("medsec.db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no issuance seen within 2 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
        if db.exists()
            && std::panic::catch_unwind(|| scalar(&db, "SELECT COUNT(*) FROM certs")).unwrap_or(0)
                > 500
        {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let certs = scalar(&db, "SELECT COUNT(*) FROM certs");
    assert!(certs > 500 && certs < 200_000, "{certs}");
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'cert.issued'"
        ),
        certs
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM certs c LEFT JOIN audit_log a ON a.subject = c.serial AND a.action = 'cert.issued' WHERE a.seq IS NULL"
        ),
        0
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM certs c LEFT JOIN devices d ON d.model = c.device_model AND d.serial = c.device_serial WHERE d.model IS NULL"
        ),
        0
    );
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM devices"),
        scalar(
            &db,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'device.registered'"
        )
    );
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_medsec"))
        .args(["--json", "--data-dir"])
        .arg(&dir)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
