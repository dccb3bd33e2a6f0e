//! The CA as real relying parties see it: `openssl verify`, `openssl crl`, `openssl ocsp`.

mod common;
use common::*;

#[test]
fn openssl_accepts_certs_and_sees_revocation_in_crl_and_ocsp() {
    let env = Env::new();
    env.init_ca("ecdsa-p256,ecdsa-p384,ed25519");
    let mut issued = Vec::new();
    for (i, kind) in ["p256", "p384", "ed25519"].into_iter().enumerate() {
        let (serial, pem) = env.issue(&format!("dev-{kind}"), kind, &format!("SN-{i}"));
        let pem = pem.to_str().unwrap().to_owned();
        let (ok, said) = env.verify(&pem, &[]);
        assert!(ok, "{said}");
        // The subject and SAN come from the profile, never from the CSR.
        let text = env.openssl_ok(&[
            "x509",
            "-in",
            &pem,
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName,basicConstraints,extendedKeyUsage",
        ]);
        contains(
            &text,
            &format!("CN = pump-x2-SN-{i}, serialNumber = SN-{i}"),
        );
        contains(&text, &format!("URI:urn:medsec:device:pump-x2:SN-{i}"));
        contains(&text, "CA:FALSE");
        contains(&text, "TLS Web Client Authentication");
        assert!(!text.contains("requested-by-device"));
        issued.push((serial, pem));
    }
    let (revoked_serial, revoked_pem) = &issued[1];
    let (_, good_pem) = &issued[0];
    env.ok(&[
        "cert",
        "revoke",
        revoked_serial,
        "--reason",
        "keyCompromise",
    ]);
    env.ok(&[
        "crl",
        "generate",
        "--ca",
        "issuing",
        "--pem",
        "--out",
        &env.p("issuing.crl.pem"),
    ]);
    env.ok(&[
        "crl",
        "generate",
        "--ca",
        "root",
        "--pem",
        "--out",
        &env.p("root.crl.pem"),
    ]);
    let crls = ["issuing.crl.pem", "root.crl.pem"];
    let (ok, said) = env.verify(good_pem, &crls);
    assert!(ok, "{said}");
    let (ok, said) = env.verify(revoked_pem, &crls);
    assert!(!ok);
    contains(&said, "certificate revoked");
    let crl_text = env.openssl_ok(&["crl", "-in", "issuing.crl.pem", "-noout", "-text"]);
    contains(&crl_text, "Key Compromise");
    contains(&crl_text, "CRL Number");
    // The CRL number goes up with every generation.
    env.ok(&[
        "crl",
        "generate",
        "--ca",
        "issuing",
        "--pem",
        "--out",
        &env.p("issuing2.crl.pem"),
    ]);
    contains(
        &env.openssl_ok(&["crl", "-in", "issuing2.crl.pem", "-noout", "-crlnumber"]),
        "crlNumber=0x02",
    );

    // OCSP with a nonce: openssl checks our signature and the nonce echo.
    contains(
        &env.ocsp("chain.pem", good_pem, "all.pem"),
        &format!("{good_pem}: good"),
    );
    let status = env.ocsp("chain.pem", revoked_pem, "all.pem");
    contains(&status, &format!("{revoked_pem}: revoked"));
    contains(&status, "Reason: keyCompromise");
    // The root answers for the issuing CA.
    contains(
        &env.ocsp("root.pem", "chain.pem", "root.pem"),
        "chain.pem: good",
    );
    // A serial we never issued reads "unknown".
    env.openssl_ok(&[
        "ocsp",
        "-issuer",
        "chain.pem",
        "-serial",
        "0x0123456789abcdef",
        "-reqout",
        "unk.der",
    ]);
    env.ok(&[
        "ocsp",
        "respond",
        "--request",
        &env.p("unk.der"),
        "--out",
        &env.p("unk.resp"),
    ]);
    contains(
        &env.openssl_ok(&[
            "ocsp",
            "-respin",
            "unk.resp",
            "-resp_text",
            "-CAfile",
            "all.pem",
            "-reqin",
            "unk.der",
        ]),
        "Cert Status: unknown",
    );
    // Garbage gets a parseable OCSP error response, not a crash; openssl exits non-zero on an
    // error status but prints what it read.
    std::fs::write(env.path("garbage.der"), b"\x30\x03garbage").unwrap();
    env.ok(&[
        "ocsp",
        "respond",
        "--request",
        &env.p("garbage.der"),
        "--out",
        &env.p("garbage.resp"),
    ]);
    let o = env.openssl(&["ocsp", "-respin", "garbage.resp", "-resp_text", "-noverify"]);
    contains(&String::from_utf8_lossy(&o.stdout), "malformedrequest (1)");
}

#[test]
fn bad_csrs_get_clear_errors_and_store_nothing() {
    let env = Env::new();
    env.init_ca("ecdsa-p256");
    let audit_before = env.json(&["audit", "verify"])["entries"].as_u64().unwrap();

    let good = env.openssl_csr("good", "p256", &[]);
    let mut der = env.openssl_ok(&[
        "req",
        "-in",
        good.to_str().unwrap(),
        "-outform",
        "DER",
        "-out",
        "good.der",
    ]);
    der.clear();
    let mut bytes = std::fs::read(env.path("good.der")).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0x40; // inside the signature value
    std::fs::write(env.path("badsig.der"), &bytes).unwrap();

    let p384 = env.openssl_csr("p384", "p384", &[]);
    let rsa = env.openssl_csr("rsa", "rsa2048", &[]);
    let ca = env.openssl_csr(
        "ca",
        "p256",
        &["-addext", "basicConstraints=critical,CA:TRUE"],
    );
    std::fs::write(
        env.path("garbage.csr"),
        b"this is not a certificate request",
    )
    .unwrap();

    let cases = [
        (env.path("badsig.der"), "signature does not verify"),
        (p384, "not allowed by profile pump"),
        (rsa, "rsa-2048 is not allowed"),
        (ca, "CA:TRUE"),
        (env.path("garbage.csr"), "CSR rejected"),
    ];
    for (i, (csr, want)) in cases.iter().enumerate() {
        let (code, err) = env.fail(&[
            "cert",
            "issue",
            "--profile",
            "pump",
            "--csr",
            csr.to_str().unwrap(),
            "--device",
            &format!("BAD-{i}"),
        ]);
        assert_eq!(code, 1);
        contains(&err, want);
    }
    let (_, err) = env.fail(&[
        "cert",
        "issue",
        "--profile",
        "pump",
        "--csr",
        env.p("missing.csr").as_str(),
        "--device",
        "X1",
    ]);
    contains(&err, "missing.csr");
    let err = env.issue_fails(&good, "bad serial");
    contains(&err, "device serial");

    assert_eq!(env.json(&["cert", "list"]), serde_json::json!([]));
    assert_eq!(env.json(&["device", "list"]), serde_json::json!([]));
    assert_eq!(
        env.json(&["audit", "verify"])["entries"].as_u64().unwrap(),
        audit_before
    );
    // And the good CSR still works afterwards.
    env.ok(&[
        "cert",
        "issue",
        "--profile",
        "pump",
        "--csr",
        good.to_str().unwrap(),
        "--device",
        "GOOD-1",
        "--out",
        &env.p("good.pem"),
    ]);
}

#[test]
fn imported_root_signs_an_issuing_ca_that_openssl_accepts() {
    let env = Env::new();
    env.openssl_ok(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-out",
        "ext-root.key",
    ]);
    env.openssl_ok(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "ext-root.key",
        "-subj",
        "/O=Acme/CN=Ceremony Root",
        "-days",
        "3650",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        "ext-root.pem",
    ]);
    // A leaf is refused as a root.
    env.openssl_ok(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "ext-root.key",
        "-subj",
        "/CN=leaf",
        "-days",
        "30",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-out",
        "leaf.pem",
    ]);
    let (_, err) = env.fail(&[
        "ca",
        "import-root",
        "--name",
        "root",
        "--cert",
        &env.p("leaf.pem"),
    ]);
    contains(&err, "not a CA");
    // Certificate only: trusted, but nothing can be signed with it here.
    env.ok(&[
        "ca",
        "import-root",
        "--name",
        "trustonly",
        "--cert",
        &env.p("ext-root.pem"),
    ]);
    let (_, err) = env.fail(&["ca", "add-issuing", "--name", "x", "--parent", "trustonly"]);
    contains(&err, "holds no private key");
    // With its key: the key is sealed into the encrypted store.
    env.ok(&[
        "ca",
        "import-root",
        "--name",
        "root",
        "--cert",
        &env.p("ext-root.pem"),
        "--key",
        &env.p("ext-root.key"),
    ]);
    let sealed = std::fs::read_to_string(env.data().join("keys/ca-root.key.json")).unwrap();
    assert!(!sealed.contains("PRIVATE KEY"));
    env.ok(&[
        "ca",
        "add-issuing",
        "--name",
        "issuing",
        "--parent",
        "root",
        "--key-alg",
        "ecdsa-p256",
    ]);
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
    std::fs::copy(env.path("ext-root.pem"), env.path("root.pem")).unwrap();
    std::fs::write(
        env.path("chain.pem"),
        env.ok(&["ca", "show", "issuing", "--pem"]),
    )
    .unwrap();
    let (_, pem) = env.issue("dev", "p256", "SN-9");
    contains(
        &env.openssl_ok(&[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem",
            pem.to_str().unwrap(),
        ]),
        ": OK",
    );
    contains(
        &env.openssl_ok(&["verify", "-CAfile", "root.pem", "chain.pem"]),
        ": OK",
    );
    // The imported root's CRL verifies with openssl against the imported certificate.
    env.ok(&[
        "crl",
        "generate",
        "--ca",
        "root",
        "--pem",
        "--out",
        &env.p("root.crl.pem"),
    ]);
    contains(
        &env.openssl_ok(&[
            "crl",
            "-in",
            "root.crl.pem",
            "-CAfile",
            "root.pem",
            "-noout",
        ]),
        "verify OK",
    );
}

/// Fixtures named after the abuse they carry; the profile allows every key type, so only the
/// abuse itself can be the reason for refusal.
#[test]
fn attack_fixture_csrs() {
    let env = Env::new();
    env.init_ca("ecdsa-p256,ecdsa-p384,ed25519,rsa-2048,rsa-3072");
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for (file, want) in [
        ("csr-requests-ca-true.pem", "CA:TRUE"),
        ("csr-tampered-signature.der", "signature does not verify"),
        ("csr-rsa-1024-weak-key.pem", "RSA modulus of 1024 bits"),
        ("csr-secp256k1-curve.pem", "not supported"),
        ("csr-garbage.bin", "not a DER PKCS#10 request"),
    ] {
        let (code, err) = env.fail(&[
            "cert",
            "issue",
            "--profile",
            "pump",
            "--csr",
            data.join(file).to_str().unwrap(),
            "--device",
            "FX-1",
        ]);
        assert_eq!(code, 1, "{file}");
        contains(&err, want);
    }
    assert_eq!(env.json(&["cert", "list"]), serde_json::json!([]));
    // Requested EKUs are never copied: the certificate gets clientAuth only.
    let out = env.p("eku.pem");
    env.ok(&[
        "cert",
        "issue",
        "--profile",
        "pump",
        "--csr",
        data.join("csr-foreign-eku.pem").to_str().unwrap(),
        "--device",
        "FX-2",
        "--out",
        &out,
    ]);
    let text = env.openssl_ok(&["x509", "-in", &out, "-noout", "-ext", "extendedKeyUsage"]);
    contains(&text, "TLS Web Client Authentication");
    assert!(
        !text.contains("Code Signing") && !text.contains("Server Authentication"),
        "{text}"
    );
}

/// P-384 and Ed25519 hierarchies work end to end with openssl, like the P-256 default.
#[test]
fn p384_and_ed25519_hierarchies() {
    for alg in ["ecdsa-p384", "ed25519"] {
        let env = Env::new();
        env.ok(&[
            "ca",
            "init",
            "--key-alg",
            alg,
            "--organization",
            "Acme Medical",
        ]);
        env.ok(&[
            "profile",
            "set",
            "--name",
            "pump",
            "--model",
            "pump-x2",
            "--key-types",
            "ecdsa-p256,ed25519",
        ]);
        env.write_trust();
        let want = if alg == "ed25519" {
            "ED25519"
        } else {
            "NIST CURVE: P-384"
        };
        contains(
            &env.openssl_ok(&["x509", "-in", "root.pem", "-noout", "-text"]),
            want,
        );
        let (serial, pem) = env.issue("dev", "p256", "SN-1");
        let p = pem.to_str().unwrap();
        let (ok, said) = env.verify(p, &[]);
        assert!(ok, "{said}");
        env.ok(&[
            "cert",
            "revoke",
            &serial,
            "--reason",
            "cessationOfOperation",
        ]);
        env.ok(&[
            "crl",
            "generate",
            "--ca",
            "issuing",
            "--pem",
            "--out",
            &env.p("crl.pem"),
        ]);
        contains(
            &env.openssl_ok(&["crl", "-in", "crl.pem", "-CAfile", "all.pem", "-noout"]),
            "verify OK",
        );
        contains(
            &env.ocsp("chain.pem", p, "all.pem"),
            "Reason: cessationOfOperation",
        );
    }
}
