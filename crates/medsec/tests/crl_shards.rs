//! Sharded CRLs end to end: `medsec serve` with `pki.crl_shards = 4`, certificates whose CRL
//! distribution points name their shard, and openssl checking each certificate against the
//! CRL fetched from its own distribution point (and refusing another shard's CRL).

mod common;
use common::server::*;
use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const SHARDS: u32 = 4;
const CERTS: usize = 40;

/// The one URI in a certificate's CRL distribution points.
fn cdp_url(env: &Env, pem: &str) -> String {
    let out = env.openssl_ok(&[
        "x509",
        "-in",
        pem,
        "-noout",
        "-ext",
        "crlDistributionPoints",
    ]);
    let urls: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("URI:"))
        .collect();
    assert_eq!(urls.len(), 1, "one distribution point in:\n{out}");
    urls[0].to_owned()
}

/// GETs `url` into `file` (DER) and converts it to `file.pem`; returns the HTTP status.
fn fetch_crl(env: &Env, url: &str, file: &str) -> String {
    let (_, code) = curl(env, &["-o", file, url]);
    if code == "200" {
        env.openssl_ok(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            file,
            "-out",
            &format!("{file}.pem"),
        ]);
    }
    code
}

fn crl_number(env: &Env, pem: &str) -> u64 {
    let out = env.openssl_ok(&["crl", "-in", pem, "-noout", "-crlnumber"]);
    let hex = out
        .trim()
        .strip_prefix("crlNumber=")
        .unwrap_or_else(|| panic!("no crlNumber in {out:?}"));
    u64::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap()
}

/// The shard number from a shard URL `http://<host>/crl/issuing/<k>.crl`.
fn shard_of(srv: &Server, url: &str) -> u32 {
    let prefix = format!("http://{}/crl/issuing/", srv.http);
    url.strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix(".crl"))
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| panic!("{url} is not a shard URL under {prefix}"))
}

#[test]
fn sharded_crls_verify_with_openssl() {
    let env = Env::new();
    std::fs::create_dir_all(env.data()).unwrap();
    std::fs::write(
        env.data().join("medsec.toml"),
        format!("[pki]\ncrl_shards = {SHARDS}\n"),
    )
    .unwrap();
    let srv = start(&env);
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

    // The root is not sharded: its one CRL is shard 0 of the {shard} template.
    let root_url = cdp_url(&env, "chain.pem");
    assert_eq!(root_url, format!("http://{}/crl/root/0.crl", srv.http));
    assert_eq!(fetch_crl(&env, &root_url, "root.crl"), "200");

    // One key for all devices keeps the test fast; what matters is each certificate's serial.
    let csr = env.openssl_csr("dev", "p256", &[]);
    let mut certs: Vec<(String, String, u32)> = Vec::new();
    for i in 0..CERTS {
        let pem = format!("c{i}.pem");
        let v = env.json(&[
            "cert",
            "issue",
            "--profile",
            "pump",
            "--csr",
            csr.to_str().unwrap(),
            "--device",
            &format!("SH-{i:03}"),
            "--out",
            &env.p(&pem),
        ]);
        let url = cdp_url(&env, &pem);
        let shard = shard_of(&srv, &url);
        assert!((1..=SHARDS).contains(&shard), "{url}");
        certs.push((v["serial"].as_str().unwrap().to_owned(), pem, shard));
    }
    let used: BTreeSet<u32> = certs.iter().map(|c| c.2).collect();
    assert_eq!(
        used.len(),
        SHARDS as usize,
        "40 random serials should reach all 4 shards: {used:?}"
    );

    // Revoke every fourth certificate from another process (the CLI), like an operator would.
    let revoked: BTreeSet<String> = certs.iter().step_by(4).map(|c| c.0.clone()).collect();
    for s in &revoked {
        env.ok(&["cert", "revoke", s, "--reason", "keyCompromise"]);
    }
    // The server polls the store every 500 ms and reissues the affected shards.
    std::thread::sleep(Duration::from_millis(1500));

    // Every certificate against the CRL at its own distribution point.
    for (i, (serial, pem, shard)) in certs.iter().enumerate() {
        let file = format!("own{i}.crl");
        assert_eq!(fetch_crl(&env, &cdp_url(&env, pem), &file), "200");
        let crl_pem = format!("{file}.pem");
        let (ok, said) = env.verify(pem, &[&crl_pem, "root.crl.pem"]);
        if revoked.contains(serial) {
            assert!(!ok, "revoked {serial} (shard {shard}) accepted:\n{said}");
            contains(&said, "certificate revoked");
        } else {
            assert!(ok, "{serial} (shard {shard}) refused:\n{said}");
        }
        // Plain -crl_check too (the leaf only, as the brief's relying party would).
        let o = env.openssl(&[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem",
            "-crl_check",
            "-CRLfile",
            &crl_pem,
            pem,
        ]);
        assert_eq!(o.status.success(), !revoked.contains(serial), "{serial}");
    }

    // Another shard's CRL never passes for a good status: openssl sees that its IDP does not
    // cover the certificate's distribution point (openssl 3: error 44, X509_V_ERR_DIFFERENT_
    // CRL_SCOPE; the verification fails rather than treating the certificate as unlisted).
    let by_shard: BTreeMap<u32, String> = certs
        .iter()
        .enumerate()
        .map(|(i, c)| (c.2, format!("own{i}.crl.pem")))
        .collect();
    for (serial, pem, shard) in &certs {
        let other = by_shard
            .iter()
            .find(|(k, _)| *k != shard)
            .map(|(_, f)| f.clone())
            .unwrap();
        let (ok, said) = env.verify(pem, &[&other, "root.crl.pem"]);
        assert!(
            !ok,
            "{serial} (shard {shard}) accepted with {other}:\n{said}"
        );
        contains(&said, "different CRL scope");
        assert!(!said.contains("certificate revoked"), "{said}");
    }

    // The IDP as openssl prints it: critical, the exact URL, user certificates only.
    let (_, pem, shard) = &certs[0];
    let url = cdp_url(&env, pem);
    fetch_crl(&env, &url, "show.crl");
    let text = env.openssl_ok(&["crl", "-in", "show.crl.pem", "-noout", "-text"]);
    contains(&text, "X509v3 Issuing Distribution Point: critical");
    contains(&text, &format!("URI:{url}"));
    contains(&text, "Only User Certificates");
    let listed = text.matches("Serial Number:").count();
    let expect = certs
        .iter()
        .filter(|c| c.2 == *shard && revoked.contains(&c.0))
        .count();
    assert_eq!(listed, expect, "shard {shard} lists only its revocations");
    contains(
        &env.openssl_ok(&[
            "crl",
            "-in",
            "show.crl.pem",
            "-CAfile",
            "chain.pem",
            "-noout",
        ]),
        "verify OK",
    );

    // A new revocation reissues only its own shard.
    let numbers = |tag: &str| -> BTreeMap<u32, u64> {
        (1..=SHARDS)
            .map(|k| {
                let file = format!("{tag}{k}.crl");
                let url = format!("http://{}/crl/issuing/{k}.crl", srv.http);
                assert_eq!(fetch_crl(&env, &url, &file), "200");
                (k, crl_number(&env, &format!("{file}.pem")))
            })
            .collect()
    };
    let before = numbers("before");
    let (serial, _, shard) = certs
        .iter()
        .find(|c| !revoked.contains(&c.0))
        .unwrap()
        .clone();
    env.ok(&["cert", "revoke", &serial, "--reason", "superseded"]);
    std::thread::sleep(Duration::from_millis(1500));
    let after = numbers("after");
    for k in 1..=SHARDS {
        if k == shard {
            assert!(
                after[&k] > before[&k],
                "shard {k} reissued: {before:?} {after:?}"
            );
        } else {
            assert_eq!(
                after[&k], before[&k],
                "shard {k} untouched: {before:?} {after:?}"
            );
        }
    }

    // Paths that name no published CRL.
    let http = |p: &str| curl(&env, &[&format!("http://{}{p}", srv.http)]);
    let (body, code) = http("/crl/issuing.crl");
    assert_eq!(code, "404");
    contains(&body, "shards");
    assert_eq!(http("/crl/issuing/0.crl").1, "404");
    assert_eq!(http(&format!("/crl/issuing/{}.crl", SHARDS + 1)).1, "404");
    assert_eq!(http("/crl/issuing/x.crl").1, "404");
    assert_eq!(http("/crl/root/1.crl").1, "404");
}

/// A CRL template without `{shard}` cannot serve several shards: `ca init` refuses it.
#[test]
fn sharding_needs_a_shard_placeholder() {
    let env = Env::new();
    std::fs::create_dir_all(env.data()).unwrap();
    std::fs::write(
        env.data().join("medsec.toml"),
        "[pki]\ncrl_shards = 4\ncrl_url = \"http://pki.example/crl/{ca}.crl\"\n",
    )
    .unwrap();
    let (_, err) = env.fail(&["ca", "init"]);
    contains(&err, "{shard}");
    // Nothing was created.
    let (_, err) = env.fail(&["ca", "show", "root"]);
    contains(&err, "not found");
}
