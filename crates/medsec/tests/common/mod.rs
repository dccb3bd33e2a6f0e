//! Shared helpers for the CLI tests: a data directory, the medsec binary, and openssl.
#![allow(dead_code)]

pub mod server;
pub mod testlog;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const PASSPHRASE: &str = "integration test passphrase";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub extra_env: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Self {
        testlog::secret(PASSPHRASE);
        Env {
            dir: tempfile::tempdir().unwrap(),
            extra_env: Vec::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    pub fn data(&self) -> PathBuf {
        self.path("data")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_medsec"));
        c.arg("--data-dir")
            .arg(self.data())
            .args(args)
            .current_dir(self.dir.path());
        c.env("MEDSEC_KEY_PASSPHRASE", PASSPHRASE)
            .env_remove("MEDSEC_DATA_DIR")
            .env_remove("MEDSEC_CONFIG");
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        testlog::secret_env(self.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let o = c.output().expect("run medsec");
        testlog::cli("medsec", args, &o);
        o
    }

    /// Runs medsec and insists on success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "medsec {args:?} failed ({:?}):\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// Runs medsec and insists on failure; returns (exit code, stderr).
    pub fn fail(&self, args: &[&str]) -> (i32, String) {
        let o = self.run(args);
        assert!(
            !o.status.success(),
            "medsec {args:?} unexpectedly succeeded"
        );
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    pub fn openssl(&self, args: &[&str]) -> Output {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("openssl must be installed (apt-get install openssl)");
        testlog::openssl_keys(args, self.dir.path());
        o
    }

    pub fn openssl_ok(&self, args: &[&str]) -> String {
        let o = self.openssl(args);
        assert!(
            o.status.success(),
            "openssl {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }

    /// `ca init` + one profile allowing `keys`; writes root.pem and chain.pem.
    pub fn init_ca(&self, keys: &str) {
        self.ok(&[
            "ca",
            "init",
            "--organization",
            "Acme Medical",
            "--country",
            "CA",
        ]);
        self.ok(&[
            "profile",
            "set",
            "--name",
            "pump",
            "--model",
            "pump-x2",
            "--key-types",
            keys,
        ]);
        self.write_trust();
    }

    pub fn write_trust(&self) {
        let root = self.ok(&["ca", "show", "root", "--pem"]);
        std::fs::write(self.path("root.pem"), &root).unwrap();
        let issuing = self.ok(&["ca", "show", "issuing", "--pem"]);
        std::fs::write(self.path("chain.pem"), &issuing).unwrap();
        std::fs::write(self.path("all.pem"), format!("{root}{issuing}")).unwrap();
    }

    /// Makes a key and CSR with openssl; `kind` is p256, p384, ed25519 or rsa2048.
    pub fn openssl_csr(&self, name: &str, kind: &str, extra: &[&str]) -> PathBuf {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let mut args: Vec<&str> = vec![
            "req",
            "-new",
            "-nodes",
            "-subj",
            "/CN=requested-by-device",
            "-keyout",
            &key,
            "-out",
            &csr,
        ];
        match kind {
            "p256" => args.extend(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
            "p384" => args.extend(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"]),
            "ed25519" => args.extend(["-newkey", "ed25519"]),
            "rsa2048" => args.extend(["-newkey", "rsa:2048"]),
            other => panic!("unknown key kind {other}"),
        }
        args.extend_from_slice(extra);
        self.openssl_ok(&args);
        self.path(&csr)
    }

    /// Issues a certificate for `device` from a fresh openssl CSR; returns (serial, pem path).
    pub fn issue(&self, name: &str, kind: &str, device: &str) -> (String, PathBuf) {
        let csr = self.openssl_csr(name, kind, &[]);
        let out = self.path(&format!("{name}.pem"));
        let v = self.json(&[
            "cert",
            "issue",
            "--profile",
            "pump",
            "--csr",
            csr.to_str().unwrap(),
            "--device",
            device,
            "--out",
            out.to_str().unwrap(),
        ]);
        (v["serial"].as_str().unwrap().to_owned(), out)
    }

    /// `openssl verify` of `pem` against root.pem + chain.pem, with `-crl_check_all` and the
    /// given CRL files when there are any. Returns (accepted, everything openssl printed).
    pub fn verify(&self, pem: &str, crls: &[&str]) -> (bool, String) {
        let mut args = vec!["verify", "-CAfile", "root.pem", "-untrusted", "chain.pem"];
        if !crls.is_empty() {
            args.push("-crl_check_all");
            for c in crls {
                args.extend(["-CRLfile", c]);
            }
        }
        args.push(pem);
        let o = self.openssl(&args);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.success(), said)
    }

    /// An OCSP round trip: openssl builds a request (with a nonce) for `cert` issued by
    /// `issuer`, medsec answers it, and openssl checks the signature and the nonce echo.
    /// Returns openssl's status report for the certificate.
    pub fn ocsp(&self, issuer: &str, cert: &str, trust: &str) -> String {
        self.openssl_ok(&[
            "ocsp", "-issuer", issuer, "-cert", cert, "-reqout", "req.der",
        ]);
        self.ok(&[
            "ocsp",
            "respond",
            "--request",
            &self.p("req.der"),
            "--out",
            &self.p("resp.der"),
        ]);
        contains(
            &self.openssl_ok(&[
                "ocsp", "-reqin", "req.der", "-respin", "resp.der", "-CAfile", trust,
            ]),
            "Response verify OK",
        );
        // The second reading builds its own request, so its nonce cannot match: -no_nonce.
        self.openssl_ok(&[
            "ocsp",
            "-respin",
            "resp.der",
            "-CAfile",
            trust,
            "-issuer",
            issuer,
            "-cert",
            cert,
            "-no_nonce",
        ])
    }

    /// Issue that must fail; returns stderr.
    pub fn issue_fails(&self, csr: &Path, device: &str) -> String {
        let (code, err) = self.fail(&[
            "cert",
            "issue",
            "--profile",
            "pump",
            "--csr",
            csr.to_str().unwrap(),
            "--device",
            device,
        ]);
        assert_eq!(code, 1);
        err
    }

    pub fn db(&self) -> PathBuf {
        self.data().join("medsec.db")
    }
}

pub fn contains(hay: &str, needle: &str) {
    assert!(hay.contains(needle), "expected {needle:?} in:\n{hay}");
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}
