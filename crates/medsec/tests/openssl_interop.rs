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
        let v = env.openssl_ok(&["verify", "-CAfile", "root.pem", "-untrusted", "chain.pem", pem.to_str().unwrap()]);
        contains(&v, ": OK");
        // The subject and SAN come from the profile, never from the CSR.
        let text = env.openssl_ok(&["x509", "-in", pem.to_str().unwrap(), "-noout", "-subject", "-ext", "subjectAltName,basicConstraints,extendedKeyUsage"]);
        contains(&text, &format!("CN = pump-x2-SN-{i}, serialNumber = SN-{i}"));
        contains(&text, &format!("URI:urn:medsec:device:pump-x2:SN-{i}"));
        contains(&text, "CA:FALSE");
        contains(&text, "TLS Web Client Authentication");
        assert!(!text.contains("requested-by-device"));
        issued.push((serial, pem));
    }
    let (revoked_serial, revoked_pem) = &issued[1];
    let (_, good_pem) = &issued[0];
    env.ok(&["cert", "revoke", revoked_serial, "--reason", "keyCompromise"]);
    env.ok(&["crl", "generate", "--ca", "issuing", "--pem", "--out", &env.p("issuing.crl.pem")]);
    env.ok(&["crl", "generate", "--ca", "root", "--pem", "--out", &env.p("root.crl.pem")]);
    let crl_args = |pem: &str| {
        vec!["verify".to_owned(), "-crl_check_all".into(), "-CAfile".into(), "root.pem".into(), "-untrusted".into(), "chain.pem".into(),
             "-CRLfile".into(), "issuing.crl.pem".into(), "-CRLfile".into(), "root.crl.pem".into(), pem.to_owned()]
    };
    let a = crl_args(good_pem.to_str().unwrap());
    contains(&env.openssl_ok(&a.iter().map(String::as_str).collect::<Vec<_>>()), ": OK");
    let a = crl_args(revoked_pem.to_str().unwrap());
    let o = env.openssl(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!o.status.success());
    let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    contains(&said, "certificate revoked");
    let crl_text = env.openssl_ok(&["crl", "-in", "issuing.crl.pem", "-noout", "-text"]);
    contains(&crl_text, "Key Compromise");
    contains(&crl_text, "CRL Number");
    // The CRL number goes up with every generation.
    env.ok(&["crl", "generate", "--ca", "issuing", "--pem", "--out", &env.p("issuing2.crl.pem")]);
    contains(&env.openssl_ok(&["crl", "-in", "issuing2.crl.pem", "-noout", "-crlnumber"]), "crlNumber=0x02");

    // OCSP with a nonce: openssl checks our signature and the nonce echo.
    for (pem, want) in [(good_pem, "good"), (revoked_pem, "revoked")] {
        let p = pem.to_str().unwrap();
        env.openssl_ok(&["ocsp", "-issuer", "chain.pem", "-cert", p, "-reqout", "req.der"]);
        env.ok(&["ocsp", "respond", "--request", &env.p("req.der"), "--out", &env.p("resp.der")]);
        contains(&env.openssl_ok(&["ocsp", "-reqin", "req.der", "-respin", "resp.der", "-CAfile", "all.pem"]), "Response verify OK");
        let status = env.openssl_ok(&["ocsp", "-respin", "resp.der", "-CAfile", "all.pem", "-issuer", "chain.pem", "-cert", p, "-no_nonce"]);
        contains(&status, &format!("{p}: {want}"));
        if want == "revoked" {
            contains(&status, "Reason: keyCompromise");
        }
    }
    // A serial we never issued reads "unknown"; the root answers for the issuing CA.
    env.openssl_ok(&["ocsp", "-issuer", "chain.pem", "-serial", "0x0123456789abcdef", "-reqout", "unk.der"]);
    env.ok(&["ocsp", "respond", "--request", &env.p("unk.der"), "--out", &env.p("unk.resp")]);
    contains(&env.openssl_ok(&["ocsp", "-respin", "unk.resp", "-resp_text", "-CAfile", "all.pem", "-reqin", "unk.der"]), "Cert Status: unknown");
    env.openssl_ok(&["ocsp", "-issuer", "root.pem", "-cert", "chain.pem", "-reqout", "ca.der"]);
    env.ok(&["ocsp", "respond", "--request", &env.p("ca.der"), "--out", &env.p("ca.resp")]);
    contains(&env.openssl_ok(&["ocsp", "-respin", "ca.resp", "-CAfile", "root.pem", "-issuer", "root.pem", "-cert", "chain.pem", "-no_nonce"]), "chain.pem: good");
    // Garbage gets a parseable OCSP error response, not a crash.
    std::fs::write(env.path("garbage.der"), b"\x30\x03garbage").unwrap();
    env.ok(&["ocsp", "respond", "--request", &env.p("garbage.der"), "--out", &env.p("garbage.resp")]);
    // openssl exits non-zero on an error status but prints what it read.
    let o = env.openssl(&["ocsp", "-respin", "garbage.resp", "-resp_text", "-noverify"]);
    contains(&String::from_utf8_lossy(&o.stdout), "malformedrequest (1)");
}

#[test]
fn bad_csrs_get_clear_errors_and_store_nothing() {
    let env = Env::new();
    env.init_ca("ecdsa-p256");
    let audit_before = env.json(&["audit", "verify"])["entries"].as_u64().unwrap();

    let good = env.openssl_csr("good", "p256", &[]);
    let mut der = env.openssl_ok(&["req", "-in", good.to_str().unwrap(), "-outform", "DER", "-out", "good.der"]);
    der.clear();
    let mut bytes = std::fs::read(env.path("good.der")).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0x40; // inside the signature value
    std::fs::write(env.path("badsig.der"), &bytes).unwrap();

    let p384 = env.openssl_csr("p384", "p384", &[]);
    let rsa = env.openssl_csr("rsa", "rsa2048", &[]);
    let ca = env.openssl_csr("ca", "p256", &["-addext", "basicConstraints=critical,CA:TRUE"]);
    std::fs::write(env.path("garbage.csr"), b"this is not a certificate request").unwrap();

    let cases = [
        (env.path("badsig.der"), "signature does not verify"),
        (p384, "not allowed by profile pump"),
        (rsa, "rsa-2048 is not allowed"),
        (ca, "CA:TRUE"),
        (env.path("garbage.csr"), "CSR rejected"),
    ];
    for (i, (csr, want)) in cases.iter().enumerate() {
        let (code, err) = env.fail(&["cert", "issue", "--profile", "pump", "--csr", csr.to_str().unwrap(), "--device", &format!("BAD-{i}")]);
        assert_eq!(code, 1);
        contains(&err, want);
    }
    let (_, err) = env.fail(&["cert", "issue", "--profile", "pump", "--csr", env.p("missing.csr").as_str(), "--device", "X1"]);
    contains(&err, "missing.csr");
    let (_, err) = env.fail(&["cert", "issue", "--profile", "pump", "--csr", good.to_str().unwrap(), "--device", "bad serial"]);
    contains(&err, "device serial");

    assert_eq!(env.json(&["cert", "list"]), serde_json::json!([]));
    assert_eq!(env.json(&["device", "list"]), serde_json::json!([]));
    assert_eq!(env.json(&["audit", "verify"])["entries"].as_u64().unwrap(), audit_before);
    // And the good CSR still works afterwards.
    env.ok(&["cert", "issue", "--profile", "pump", "--csr", good.to_str().unwrap(), "--device", "GOOD-1", "--out", &env.p("good.pem")]);
}

#[test]
fn imported_root_signs_an_issuing_ca_that_openssl_accepts() {
    let env = Env::new();
    env.openssl_ok(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", "ext-root.key"]);
    env.openssl_ok(&["req", "-x509", "-new", "-key", "ext-root.key", "-subj", "/O=Acme/CN=Ceremony Root", "-days", "3650",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "ext-root.pem"]);
    // A leaf is refused as a root.
    env.openssl_ok(&["req", "-x509", "-new", "-key", "ext-root.key", "-subj", "/CN=leaf", "-days", "30",
        "-addext", "basicConstraints=critical,CA:FALSE", "-out", "leaf.pem"]);
    let (_, err) = env.fail(&["ca", "import-root", "--name", "root", "--cert", &env.p("leaf.pem")]);
    contains(&err, "not a CA");
    // Certificate only: trusted, but nothing can be signed with it here.
    env.ok(&["ca", "import-root", "--name", "trustonly", "--cert", &env.p("ext-root.pem")]);
    let (_, err) = env.fail(&["ca", "add-issuing", "--name", "x", "--parent", "trustonly"]);
    contains(&err, "holds no private key");
    // With its key: the key is sealed into the encrypted store.
    env.ok(&["ca", "import-root", "--name", "root", "--cert", &env.p("ext-root.pem"), "--key", &env.p("ext-root.key")]);
    let sealed = std::fs::read_to_string(env.data().join("keys/ca-root.key.json")).unwrap();
    assert!(!sealed.contains("PRIVATE KEY"));
    env.ok(&["ca", "add-issuing", "--name", "issuing", "--parent", "root", "--key-alg", "ecdsa-p256"]);
    env.ok(&["profile", "set", "--name", "pump", "--model", "pump-x2", "--key-types", "ecdsa-p256"]);
    std::fs::copy(env.path("ext-root.pem"), env.path("root.pem")).unwrap();
    std::fs::write(env.path("chain.pem"), env.ok(&["ca", "show", "issuing", "--pem"])).unwrap();
    let (_, pem) = env.issue("dev", "p256", "SN-9");
    contains(&env.openssl_ok(&["verify", "-CAfile", "root.pem", "-untrusted", "chain.pem", pem.to_str().unwrap()]), ": OK");
    contains(&env.openssl_ok(&["verify", "-CAfile", "root.pem", "chain.pem"]), ": OK");
    // The imported root's CRL verifies with openssl against the imported certificate.
    env.ok(&["crl", "generate", "--ca", "root", "--pem", "--out", &env.p("root.crl.pem")]);
    contains(&env.openssl_ok(&["crl", "-in", "root.crl.pem", "-CAfile", "root.pem", "-noout"]), "verify OK");
}
