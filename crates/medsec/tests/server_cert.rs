//! The server's self-issued TLS certificate: short-lived, marked noRevAvail (its key never
//! leaves memory and it is not stored, so no CRL or OCSP responder could speak for it), and
//! renewed in place on both TLS listeners before it expires, without a restart. Checked with
//! `openssl s_client` and `openssl verify`.

mod common;
use common::server::*;
use common::*;

use std::time::{Duration, Instant};

fn config(env: &Env, lifetime: u64, check: u64) {
    std::fs::create_dir_all(env.data()).unwrap();
    std::fs::write(
        env.data().join("medsec.toml"),
        format!(
            "[server]\nself_issued_cert_secs = {lifetime}\nself_issued_cert_check_secs = {check}\n"
        ),
    )
    .unwrap();
}

/// The leaf certificate `addr` presents (PEM), fetched with `openssl s_client`.
fn presented(env: &Env, addr: &str, out: &str) -> String {
    let o = env.openssl(&[
        "s_client",
        "-connect",
        addr,
        "-servername",
        "127.0.0.1",
        "-CAfile",
        "root.pem",
    ]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate from {addr}: {text}"));
    let end = text[begin..].find("-----END CERTIFICATE-----").unwrap() + begin + 25;
    let pem = format!("{}\n", &text[begin..end]);
    std::fs::write(env.path(out), &pem).unwrap();
    pem
}

fn field(env: &Env, file: &str, what: &str) -> String {
    env.openssl_ok(&["x509", "-in", file, "-noout", what])
}

#[test]
fn the_self_issued_certificate_is_short_lived_marked_and_renewed_in_place() {
    let env = Env::new();
    config(&env, 8, 1);
    let srv = start(&env);

    let first = presented(&env, &srv.https, "first.pem");
    let text = field(&env, "first.pem", "-text");
    assert!(
        text.contains("No Revocation Available") || text.contains("2.5.29.56"),
        "no noRevAvail extension: {text}"
    );
    assert!(
        !text.contains("CRL Distribution Points") && !text.contains("OCSP - URI"),
        "{text}"
    );
    let dates = field(&env, "first.pem", "-dates");
    let verified = env.openssl(&[
        "verify",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "chain.pem",
        "first.pem",
    ]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    // The device listener presents the same certificate.
    assert_eq!(presented(&env, &srv.device, "first-device.pem"), first);

    // Two thirds of 8 s (plus the 60 s backdating of notBefore, which counts as lifetime)
    // have passed already: the first check renews it. Poll both listeners until they move on.
    let t0 = Instant::now();
    let renewed = loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = presented(&env, &srv.https, "second.pem");
        if now != first {
            break now;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "never renewed ({dates})"
        );
    };
    assert_ne!(
        field(&env, "first.pem", "-serial"),
        field(&env, "second.pem", "-serial")
    );
    let verified = env.openssl(&[
        "verify",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "chain.pem",
        "second.pem",
    ]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    let device_now = loop {
        let d = presented(&env, &srv.device, "second-device.pem");
        if d != first || t0.elapsed() > Duration::from_secs(20) {
            break d;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_ne!(
        device_now, first,
        "the device listener kept the old certificate"
    );
    // The server kept serving throughout: EST still answers on the renewed certificate.
    let (_, code) = curl(
        &env,
        &[
            "--cacert",
            "root.pem",
            &format!("https://{}/.well-known/est/cacerts", srv.https),
        ],
    );
    assert_eq!(code, "200");
    drop(renewed);
}

#[test]
fn a_lifetime_beyond_thirty_days_is_refused_at_start() {
    let env = Env::new();
    config(&env, 31 * 86_400, 600);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_medsec"))
        .arg("--data-dir")
        .arg(env.data())
        .args(SERVE_ON_LOOPBACK)
        .env("MEDSEC_KEY_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("30 days"), "{err}");
}
