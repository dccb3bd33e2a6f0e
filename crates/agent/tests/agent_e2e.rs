//! End to end: the `medsec-agent` binary (and library) against a real `medsec serve`, no mocks.
//!
//! One server per test run; the steps share it because they are one device's life: enroll,
//! token reuse refused, renew not due, forced renew, rekey, revocation.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use medsec_agent::{Agent, AgentConfig, AgentError};
use x509_parser::prelude::{FromDer, X509Certificate};

const PASSPHRASE: &str = "agent e2e test passphrase";

/// `target/<profile>/`, found from this test executable (`target/<profile>/deps/…`), so a
/// custom CARGO_TARGET_DIR works too.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// The `medsec` binary; built first when this crate's tests run on their own.
fn medsec_bin() -> PathBuf {
    let bin = target_dir().join(format!("medsec{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let st = Command::new(cargo)
            .args(["build", "-p", "medsec", "--bin", "medsec"])
            .current_dir(root)
            .status()
            .expect("run cargo build -p medsec");
        assert!(st.success(), "cargo build -p medsec failed");
    }
    assert!(bin.exists(), "{} not found after building", bin.display());
    bin
}

/// A running `medsec serve`, killed when dropped (also when a step panics).
struct Server {
    child: Child,
    dir: tempfile::TempDir,
    bin: PathBuf,
    https: String,
    device: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Server {
        let bin = medsec_bin();
        let dir = tempfile::tempdir().unwrap();
        let stderr = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut child = Command::new(&bin)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args([
                "serve",
                "--http",
                "127.0.0.1:0",
                "--https",
                "127.0.0.1:0",
                "--device",
                "127.0.0.1:0",
            ])
            .env("MEDSEC_KEY_PASSPHRASE", PASSPHRASE)
            .env_remove("MEDSEC_DATA_DIR")
            .env_remove("MEDSEC_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn medsec serve");
        // Keep draining stdout after the first line so the server never writes into a full
        // or closed pipe.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut server = Server {
            child,
            dir,
            bin,
            https: String::new(),
            device: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("medsec listening ") => {
                    for part in line.split_whitespace() {
                        if let Some(a) = part.strip_prefix("https=") {
                            server.https = a.to_owned();
                        } else if let Some(a) = part.strip_prefix("device=") {
                            server.device = a.to_owned();
                        }
                    }
                    break;
                }
                Ok(_) => {}
                Err(_) => panic!("medsec serve did not start:\n{}", server.log()),
            }
        }
        assert!(!server.https.is_empty() && !server.device.is_empty());
        let root = server.medsec_ok(&["ca", "show", "root", "--pem"]);
        std::fs::write(server.path("root.pem"), root).unwrap();
        server
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("server.log")).unwrap_or_default()
    }

    fn medsec(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("--data-dir")
            .arg(self.path("data"))
            .args(args)
            .env("MEDSEC_KEY_PASSPHRASE", PASSPHRASE)
            .env_remove("MEDSEC_DATA_DIR")
            .env_remove("MEDSEC_CONFIG")
            .output()
            .expect("run medsec")
    }

    fn medsec_ok(&self, args: &[&str]) -> String {
        let o = self.medsec(args);
        assert!(
            o.status.success(),
            "medsec {args:?} failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn token(&self, device: &str) -> String {
        let out = self.medsec_ok(&[
            "--json",
            "token",
            "create",
            "--profile",
            "default",
            "--device",
            device,
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["token"].as_str().expect("token field").to_owned()
    }

    /// Runs the agent for state directory `state` with the usual server flags.
    fn agent(&self, state: &str, args: &[&str]) -> Output {
        self.agent_with(state, &self.path("root.pem"), "localhost", args)
    }

    fn agent_with(&self, state: &str, root: &Path, name: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_medsec-agent"))
            .arg("--state-dir")
            .arg(self.path(state))
            .args(["--server-https", &self.https])
            .args(["--server-device", &self.device])
            .args(["--server-name", name])
            .arg("--trust-root")
            .arg(root)
            .args(["--timeout-secs", "20"])
            .args(args)
            .env_remove("MEDSEC_AGENT_TOKEN")
            .output()
            .expect("run medsec-agent")
    }

    fn agent_ok(&self, state: &str, args: &[&str]) -> String {
        let o = self.agent(state, args);
        assert!(
            o.status.success(),
            "medsec-agent {args:?} failed ({:?}):\n{}\nserver log:\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs the agent, insists on exit code 1; returns stderr.
    fn agent_fails(&self, state: &str, args: &[&str]) -> String {
        let o = self.agent(state, args);
        assert_eq!(
            o.status.code(),
            Some(1),
            "medsec-agent {args:?} should fail with 1; stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stderr).unwrap()
    }

    fn whoami(&self, state: &str) -> serde_json::Value {
        serde_json::from_str(&self.agent_ok(state, &["whoami"])).unwrap()
    }

    fn config(&self, state: &str) -> AgentConfig {
        AgentConfig::new(
            &self.https,
            &self.device,
            "localhost",
            self.path("root.pem"),
            self.path(state),
        )
    }
}

/// (serial hex, SubjectPublicKeyInfo DER) of the certificate in `state/device.pem`.
fn cert_facts(dir: &Path) -> (String, Vec<u8>) {
    let pem = std::fs::read(dir.join("device.pem")).unwrap();
    let p = pem::parse(pem).unwrap();
    let (_, c) = X509Certificate::from_der(p.contents()).unwrap();
    let serial = medsec_core::CertSerial::from_bytes(c.raw_serial()).unwrap();
    (serial.to_hex(), c.public_key().raw.to_vec())
}

fn contains(hay: &str, needle: &str) {
    assert!(hay.contains(needle), "expected {needle:?} in:\n{hay}");
}

#[test]
fn device_lifecycle_against_a_real_server() {
    let s = Server::start();
    let dev = s.path("dev1");

    // 1. Enrollment with a one-time token; the gateway knows us by our device URN.
    let token = s.token("SN-1001");
    let out = s.agent_ok(
        "dev1",
        &["enroll", "--serial", "SN-1001", "--token", &token],
    );
    contains(&out, "enrolled urn:medsec:device:demo-device:SN-1001");
    for f in ["device.key", "device.pem", "chain.pem"] {
        assert!(dev.join(f).exists(), "{f} missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dev.join("device.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "device.key must be private");
    }
    let chain = std::fs::read_to_string(dev.join("chain.pem")).unwrap();
    assert_eq!(
        chain.matches("BEGIN CERTIFICATE").count(),
        2,
        "issuing + root"
    );
    let w = s.whoami("dev1");
    assert_eq!(w["device"], "urn:medsec:device:demo-device:SN-1001");
    assert_eq!(w["serial"], "SN-1001");
    assert_eq!(w["profile"], "default");
    let (serial1, spki1) = cert_facts(&dev);
    assert_eq!(w["certificate"], serial1.as_str());
    let status: serde_json::Value =
        serde_json::from_str(&s.agent_ok("dev1", &["--json", "status"])).unwrap();
    assert_eq!(status["renewal_due"], false);
    assert_eq!(status["key_algorithm"], "ecdsa-p256");

    // 2. The token is spent: a second enrollment with it is refused with the server's 401.
    let err = s.agent_fails(
        "dev2",
        &["enroll", "--serial", "SN-1001", "--token", &token],
    );
    contains(&err, "HTTP 401");
    contains(&err, "enrollment token is unknown, expired or already used");
    assert!(!s.path("dev2").join("device.pem").exists());
    assert!(
        !s.path("dev2").join("device.key.next").exists(),
        "a failed enrollment leaves no staged key behind"
    );
    // Enrolling an enrolled state directory is refused locally, before any token is spent.
    let fresh = s.token("SN-1001");
    let err = s.agent_fails(
        "dev1",
        &["enroll", "--serial", "SN-1001", "--token", &fresh],
    );
    contains(&err, "already enrolled");

    // 3. Renewal: not due right after enrollment; forced, a new certificate for the same key.
    let out = s.agent_ok("dev1", &["renew"]);
    contains(&out, "not due");
    assert_eq!(cert_facts(&dev).0, serial1, "nothing changes when not due");
    let out = s.agent_ok("dev1", &["renew", "--force"]);
    contains(&out, "renewed");
    let (serial2, spki2) = cert_facts(&dev);
    assert_ne!(serial2, serial1, "a renewal is a new certificate");
    assert_eq!(spki2, spki1, "a renewal keeps the key");
    assert_eq!(s.whoami("dev1")["certificate"], serial2.as_str());

    // 4. Rekey: a new key, a certificate for it, same device identity.
    let out = s.agent_ok("dev1", &["renew", "--force", "--rekey"]);
    contains(&out, "rekeyed");
    let (serial3, spki3) = cert_facts(&dev);
    assert_ne!(serial3, serial2);
    assert_ne!(spki3, spki2, "a rekey changes the public key");
    let w = s.whoami("dev1");
    assert_eq!(w["certificate"], serial3.as_str());
    assert_eq!(w["device"], "urn:medsec:device:demo-device:SN-1001");
    // Ed25519 rekey through the library API, to cover a second key type and the subject copy.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut cfg = s.config("dev1");
    cfg.key_algorithm = medsec_core::KeyAlgorithm::Ed25519;
    let agent = Agent::new(cfg).unwrap();
    let out = rt
        .block_on(agent.renew_if_due(time::OffsetDateTime::now_utc(), true, true))
        .unwrap();
    assert!(
        matches!(out, medsec_agent::RenewOutcome::Rekeyed { .. }),
        "{out:?}"
    );
    let (serial4, _) = cert_facts(&dev);
    let me = rt.block_on(agent.whoami()).unwrap();
    assert_eq!(me.certificate.to_hex(), serial4);
    assert_eq!(me.serial.as_str(), "SN-1001");

    // 5. Revoked: the gateway refuses the handshake once the server has seen the revocation.
    s.medsec_ok(&["cert", "revoke", &serial4, "--reason", "keyCompromise"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let err = loop {
        std::thread::sleep(Duration::from_millis(500));
        let o = s.agent("dev1", &["whoami"]);
        if !o.status.success() {
            assert_eq!(o.status.code(), Some(1));
            break String::from_utf8(o.stderr).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "whoami still succeeds after revocation"
        );
    };
    contains(&err, "TLS");
    contains(&err, "revoked");
    match rt.block_on(agent.whoami()) {
        Err(AgentError::Tls { reason, .. }) => contains(&reason, "revoked"),
        other => panic!("expected a TLS refusal, got {other:?}"),
    }
    // And renewal with the revoked certificate fails too (the CA refuses it).
    let err = s.agent_fails("dev1", &["renew", "--force"]);
    contains(&err, "revoked");
}

#[test]
fn the_server_must_prove_itself_against_the_trust_root() {
    let s = Server::start();
    let token = s.token("SN-2002");

    // A trust root that did not issue the server's certificate.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(s.path("other.pem"), other.cert.pem()).unwrap();
    let o = s.agent_with(
        "d",
        &s.path("other.pem"),
        "localhost",
        &["enroll", "--serial", "SN-2002", "--token", &token],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    contains(&err, "not trusted");

    // The right root but a name the server certificate does not carry.
    let o = s.agent_with(
        "d",
        &s.path("root.pem"),
        "device-pki.example",
        &["enroll", "--serial", "SN-2002", "--token", &token],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    contains(&err, "not trusted");

    // The token survived both attempts (they never reached the EST handler): it still works,
    // and the IP-address name in the server certificate is accepted as well.
    let o = s.agent_with(
        "d",
        &s.path("root.pem"),
        "127.0.0.1",
        &["enroll", "--serial", "SN-2002", "--token", &token],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn usage_errors_exit_with_2() {
    let o = Command::new(env!("CARGO_BIN_EXE_medsec-agent"))
        .args(["status"])
        .env_remove("MEDSEC_AGENT_STATE_DIR")
        .env_remove("MEDSEC_AGENT_TRUST_ROOT")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    contains(&String::from_utf8_lossy(&o.stderr), "--state-dir");

    let o = Command::new(env!("CARGO_BIN_EXE_medsec-agent"))
        .args(["frobnicate"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));

    let t = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_medsec-agent"))
        .arg("--state-dir")
        .arg(t.path().join("s"))
        .arg("--trust-root")
        .arg(t.path().join("root.pem"))
        .args(["enroll", "--serial", "bad serial!", "--token", "x"])
        .env_remove("MEDSEC_AGENT_SERVER_HTTPS")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
