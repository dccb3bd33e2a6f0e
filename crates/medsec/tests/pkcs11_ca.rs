//! The issuing and root CA keys live in a PKCS#11 token (SoftHSM2); openssl verifies what they sign.

mod common;
use common::*;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

#[test]
fn ca_keys_in_softhsm_sign_certs_crls_and_ocsp() {
    if !std::path::Path::new(MODULE).exists() {
        if std::env::var_os("CI").is_some() {
            panic!("SoftHSM2 is required in CI: apt-get install softhsm2");
        }
        eprintln!("SKIPPED: {MODULE} not installed (apt-get install softhsm2)");
        return;
    }
    let mut env = Env::new();
    let tokens = env.path("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = env.path("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    env.extra_env
        .push(("SOFTHSM2_CONF".into(), conf.display().to_string()));
    env.extra_env
        .push(("MEDSEC_PKCS11_PIN".into(), "1234567890".into()));
    // No passphrase: nothing in this setup may fall back to key files.
    env.extra_env
        .push(("MEDSEC_KEY_PASSPHRASE".into(), "".into()));
    let o = std::process::Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "medsec-ca",
            "--pin",
            "1234567890",
            "--so-pin",
            "0987654321",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::create_dir_all(env.data()).unwrap();
    std::fs::write(
        env.data().join("medsec.toml"),
        format!("[keys]\nbackend = \"pkcs11\"\npkcs11_module = \"{MODULE}\"\npkcs11_token = \"medsec-ca\"\n"),
    )
    .unwrap();

    env.init_ca("ecdsa-p256");
    let cas = env.json(&["ca", "list"]);
    for ca in cas.as_array().unwrap() {
        assert!(
            ca["key"].as_str().unwrap().starts_with("pkcs11:object="),
            "{ca}"
        );
    }
    assert!(
        !env.data().join("keys").exists(),
        "no key files are written"
    );

    let (_, good_pem) = env.issue("good", "p256", "HSM-1");
    let (bad, bad_pem) = env.issue("bad", "p256", "HSM-2");
    let (good_pem, bad_pem) = (good_pem.to_str().unwrap(), bad_pem.to_str().unwrap());
    let (ok, said) = env.verify(good_pem, &[]);
    assert!(ok, "{said}");
    env.ok(&["cert", "revoke", &bad, "--reason", "keyCompromise"]);
    for ca in ["issuing", "root"] {
        env.ok(&[
            "crl",
            "generate",
            "--ca",
            ca,
            "--pem",
            "--out",
            &env.p(&format!("{ca}.crl.pem")),
        ]);
    }
    let crls = ["issuing.crl.pem", "root.crl.pem"];
    let (ok, said) = env.verify(bad_pem, &crls);
    assert!(!ok);
    contains(&said, "certificate revoked");
    let (ok, said) = env.verify(good_pem, &crls);
    assert!(ok, "{said}");
    contains(
        &env.ocsp("chain.pem", bad_pem, "all.pem"),
        "Reason: keyCompromise",
    );

    // A wrong PIN is a clear error, not a silent fallback.
    env.extra_env.retain(|(k, _)| k != "MEDSEC_PKCS11_PIN");
    env.extra_env
        .push(("MEDSEC_PKCS11_PIN".into(), "0000000000".into()));
    let csr = env.openssl_csr("x", "p256", &[]);
    contains(&env.issue_fails(&csr, "HSM-3"), "PKCS#11");
}
