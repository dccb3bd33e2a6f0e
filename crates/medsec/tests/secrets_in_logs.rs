//! The secrets-in-logs check itself (scripts/secrets-in-logs.sh, run by scripts/test.sh on
//! the logs of the whole test run): it fails on a planted secret of every kind, passes a clean
//! directory, refuses an empty one, never prints a secret whole, and the harness really
//! captures a server's log, CLI stderr and the secrets it handles (a child run of this binary
//! with `MEDSEC_TEST_LOG_DIR` set), so the check cannot pass by seeing nothing.

mod common;
use common::server::*;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/secrets-in-logs.sh")
}

/// Runs the script on `dir`: (exit code, stdout + stderr).
fn check(dir: &Path) -> (i32, String) {
    let o = Command::new("bash")
        .arg(script())
        .arg(dir)
        .output()
        .expect("bash must be installed");
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

const TOKEN: &str = "mst_0123456789abcdef_Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg";
const ENROLL: &str = "q7Hc2rT0vW1xY2zA3bB4cC5dD6eE7fF8gG9hH0iI1jJ";

/// A log directory as the harness leaves it: logs with ordinary lines, recorded secrets.
fn clean_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("secrets")).unwrap();
    std::fs::write(
        d.path().join("secrets").join("server.1.txt"),
        format!("{ENROLL}\n{PASSPHRASE}\n{TOKEN}\nshort\n"),
    )
    .unwrap();
    std::fs::write(
        d.path().join("server.1.00000.t.medsec-serve.log"),
        "medsec listening http=127.0.0.1:1 https=127.0.0.1:2 device=127.0.0.1:3\n\
         INFO certificate issued device=urn:medsec:device:pump:SN-1 kind=enroll\n\
         WARN EST: enrollment token is unknown, expired or already used\n\
         INFO API request refused: invalid token mst_0123456789abcdef (id only)\n\
         WWW-Authenticate: Bearer realm=\"medsec\"\n\
         a short (5 chars) recorded value is not matched: short\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("server.1.00001.t.medsec-token-create.log"),
        "note: the token is printed once\n",
    )
    .unwrap();
    d
}

#[test]
fn a_clean_directory_passes() {
    let d = clean_dir();
    let (code, out) = check(d.path());
    assert_eq!(code, 0, "{out}");
    contains(&out, "2 log files");
    contains(&out, "3 recorded secrets");
}

#[test]
fn each_kind_of_secret_fails_the_check_without_being_printed() {
    let key = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAAAAAAAAAAAA\n\
               -----END PRIVATE KEY-----\n";
    for (planted, what, hidden) in [
        (
            format!("enrolling with {ENROLL}\n"),
            "recorded secret",
            ENROLL,
        ),
        (
            format!("key passphrase {PASSPHRASE:?} refused\n"),
            "recorded secret",
            PASSPHRASE,
        ),
        (format!("api: {TOKEN}\n"), "recorded secret", TOKEN),
        (
            // The token's secret part alone is recorded by the harness, so it is caught too.
            "presented Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg\n".into(),
            "",
            "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg",
        ),
        (key.into(), "PEM private key", "MIGHAgEAMBMG"),
        (
            // An API token nobody recorded: caught by its shape.
            "token mst_fedcba9876543210_bm90LXJlY29yZGVkLWFueXdoZXJlLWF0LWFsbA\n".into(),
            "API token",
            "bm90LXJlY29yZGVkLWFueXdoZXJlLWF0LWFsbA",
        ),
        (
            "{\"authorization\": \"Bearer abcdefghijklmnop\"}\n".into(),
            "Authorization credential",
            "abcdefghijklmnop",
        ),
        (
            "Authorization: Basic U04tMTpzZWNyZXQ=\n".into(),
            "Authorization credential",
            "U04tMTpzZWNyZXQ=",
        ),
    ] {
        let d = clean_dir();
        if what.is_empty() {
            // Record the secret part the way the harness does for an API token.
            let secrets = d.path().join("secrets").join("server.1.txt");
            let mut s = std::fs::read_to_string(&secrets).unwrap();
            s.push_str("Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg\n");
            std::fs::write(&secrets, s).unwrap();
        }
        let log = d.path().join("agent.2.00003.t.medsec-agent-enroll.log");
        std::fs::write(&log, format!("first line\n{planted}last line\n")).unwrap();
        let (code, out) = check(d.path());
        assert_eq!(code, 1, "planted {planted:?} was not found:\n{out}");
        // Named by file and line.
        contains(&out, &format!("{}:2:", log.display()));
        if !what.is_empty() {
            contains(&out, what);
        }
        assert!(
            !out.contains(hidden),
            "the report prints the secret {hidden:?}:\n{out}"
        );
    }
}

#[test]
fn nothing_to_check_is_an_error_not_a_pass() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(check(d.path()).0, 2);
    std::fs::create_dir(d.path().join("secrets")).unwrap();
    std::fs::write(d.path().join("secrets").join("x.txt"), "some secret here\n").unwrap();
    assert_eq!(check(d.path()).0, 2, "secrets but no log");
    assert_eq!(check(&d.path().join("missing")).0, 2);
}

/// The child run for [`the_harness_captures_logs_and_secrets`]; does nothing unless that test
/// starts it.
#[test]
fn harness_child() {
    if std::env::var_os("MEDSEC_SECRETS_IN_LOGS_CHILD").is_none() {
        return;
    }
    let env = Env::new();
    let srv = start(&env);
    enroll(&env, &srv, "LOGS-1", "dev");
    let auth = api_auth(&env, "auditor");
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
    // A CLI failure, so that there is stderr to capture.
    env.fail(&["token", "create", "--profile", "no-such", "--device", "X"]);
}

#[test]
fn the_harness_captures_logs_and_secrets() {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "harness_child", "--nocapture"])
        .env("MEDSEC_SECRETS_IN_LOGS_CHILD", "1")
        .env(testlog::ENV, d.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "child run failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let mut logs = Vec::new();
    for e in std::fs::read_dir(d.path()).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            logs.push(p);
        }
    }
    let name = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
    let server = logs
        .iter()
        .find(|p| name(p).ends_with(".medsec-serve.log"))
        .unwrap_or_else(|| panic!("no server log among {logs:?}"));
    contains(
        &std::fs::read_to_string(server).unwrap(),
        "medsec listening",
    );
    let cli = logs
        .iter()
        .find(|p| name(p).ends_with(".medsec-token-create.log"))
        .unwrap_or_else(|| panic!("no CLI stderr log among {logs:?}"));
    contains(&name(cli), ".harness_child.");
    assert!(std::fs::metadata(cli).unwrap().len() > 0);

    let mut secrets = String::new();
    for e in std::fs::read_dir(d.path().join("secrets")).unwrap() {
        secrets.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    let lines: Vec<&str> = secrets.lines().collect();
    assert!(lines.contains(&PASSPHRASE), "passphrase not recorded");
    let api = lines
        .iter()
        .find(|l| l.starts_with("mst_"))
        .expect("API token not recorded");
    // `mst_<16 hex>_<secret>`; the secret (base64url) may itself hold '_'.
    let tail = &api["mst_0123456789abcdef_".len()..];
    assert!(
        lines.contains(&tail),
        "API token's secret part not recorded"
    );
    // The device key's lines (openssl's -keyout; PKCS#8 P-256 begins "MIGHAgEA").
    let key = lines
        .iter()
        .find(|l| l.starts_with("MIGHAgEA"))
        .expect("device key not recorded");
    // And the enrollment token: passphrase, API token and its tail, key lines, token.
    assert!(
        lines.len() >= 6,
        "too few secrets recorded: {}",
        lines.len()
    );

    let (code, out) = check(d.path());
    assert_eq!(code, 0, "{out}");

    // The same logs with a recorded secret in the server's log fail.
    for planted in [*api, tail, *key] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(d.path(), copy.path());
        let log = copy.path().join(server.file_name().unwrap());
        let mut text = std::fs::read_to_string(&log).unwrap();
        text.push_str(&format!("oops {planted}\n"));
        std::fs::write(&log, text).unwrap();
        let (code, out) = check(copy.path());
        assert_eq!(code, 1, "{out}");
        assert!(!out.contains(planted), "{out}");
    }
}
