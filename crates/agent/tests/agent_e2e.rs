//! End to end: the `medsec-agent` binary (and library) against a real `medsec serve`, no mocks.
//!
//! One server per test run; the steps share it because they are one device's life: enroll,
//! token reuse refused, renew not due, forced renew, rekey, revocation. The same life with the
//! device key in a PKCS#11 token runs against SoftHSM2. Security events go through the spool
//! to the server, across a server outage and an agent crash.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use medsec_agent::events::{EventType, Severity};
use medsec_agent::{Agent, AgentConfig, AgentError, EventReporter, NewEvent, Pkcs11KeyConfig};
use time::format_description::well_known::Rfc3339;
use x509_parser::prelude::{FromDer, X509Certificate};

const PASSPHRASE: &str = "agent e2e test passphrase";

/// Log capture for scripts/secrets-in-logs.sh (`MEDSEC_TEST_LOG_DIR`), shared with medsec's
/// own test harness.
#[path = "../../medsec/tests/common/testlog.rs"]
mod testlog;

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
    /// `None` while stopped.
    child: Option<Child>,
    dir: tempfile::TempDir,
    bin: PathBuf,
    http: String,
    https: String,
    device: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Server {
    fn start() -> Server {
        let bin = medsec_bin();
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server {
            child: None,
            dir,
            bin,
            http: String::new(),
            https: String::new(),
            device: String::new(),
        };
        testlog::secret(PASSPHRASE);
        if let Some(p) = testlog::new_log("medsec-serve") {
            // server.log (read by `log()`) is the captured file itself.
            std::os::unix::fs::symlink(p, server.path("server.log")).unwrap();
        }
        server.launch();
        let root = server.medsec_ok(&["ca", "show", "root", "--pem"]);
        std::fs::write(server.path("root.pem"), root).unwrap();
        server
    }

    /// Stops the server (like a crash or power cut: killed, no shutdown).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same data; the listeners get new ports.
    fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Spawns `medsec serve` on the data directory and waits for its listening line.
    fn launch(&mut self) {
        // Appended to, so the log of a restarted server still shows the first run.
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("server.log"))
            .unwrap();
        let mut child = Command::new(&self.bin)
            .arg("--data-dir")
            .arg(self.path("data"))
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
            .envs(testlog::server_env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn medsec serve");
        // Keep draining stdout after the first line so the server never writes into a full
        // or closed pipe.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Captured for the secrets check: stdout joins stderr in the log.
        let mut copy = testlog::dir().map(|_| testlog::append(&self.path("server.log")));
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(f) = copy.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                let _ = tx.send(line);
            }
        });
        self.child = Some(child);
        let server = self;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("medsec listening ") => {
                    for part in line.split_whitespace() {
                        if let Some(a) = part.strip_prefix("http=") {
                            server.http = a.to_owned();
                        } else if let Some(a) = part.strip_prefix("https=") {
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
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("server.log")).unwrap_or_default()
    }

    fn medsec(&self, args: &[&str]) -> Output {
        let o = Command::new(&self.bin)
            .arg("--data-dir")
            .arg(self.path("data"))
            .args(args)
            .env("MEDSEC_KEY_PASSPHRASE", PASSPHRASE)
            .env_remove("MEDSEC_DATA_DIR")
            .env_remove("MEDSEC_CONFIG")
            .output()
            .expect("run medsec");
        testlog::cli("medsec", args, &o);
        o
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
        let t = v["token"].as_str().expect("token field").to_owned();
        testlog::secret(&t);
        t
    }

    /// Runs the agent for state directory `state` with the usual server flags.
    fn agent(&self, state: &str, args: &[&str]) -> Output {
        self.agent_with(state, &self.path("root.pem"), "localhost", args)
    }

    fn agent_with(&self, state: &str, root: &Path, name: &str, args: &[&str]) -> Output {
        let o = self
            .agent_cmd(state, root, name, args)
            .output()
            .expect("run medsec-agent");
        self.agent_logged(state, args, &o);
        o
    }

    /// Hands an agent run to the log capture, with the device key it may have generated.
    fn agent_logged(&self, state: &str, args: &[&str], o: &Output) {
        testlog::private_key_file(&self.path(state).join("device.key"));
        testlog::process("medsec-agent", args, o);
    }

    fn agent_cmd(&self, state: &str, root: &Path, name: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_medsec-agent"));
        cmd.arg("--state-dir")
            .arg(self.path(state))
            .args(["--server-https", &self.https])
            .args(["--server-device", &self.device])
            .args(["--server-name", name])
            .arg("--trust-root")
            .arg(root)
            .args(["--timeout-secs", "20"])
            .args(args)
            .env_remove("MEDSEC_AGENT_TOKEN");
        for var in [
            "MEDSEC_AGENT_PKCS11_MODULE",
            "MEDSEC_AGENT_PKCS11_TOKEN",
            "MEDSEC_AGENT_PKCS11_PIN",
        ] {
            cmd.env_remove(var);
        }
        cmd
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

    // PKCS#11 settings come as a set, and the PIN never on the command line.
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("root.pem"), "").unwrap();
    for (args, needle) in [
        (
            &["--pkcs11-module", "/x.so", "status"][..],
            "--pkcs11-token",
        ),
        (&["--pkcs11-token", "t", "status"][..], "--pkcs11-module"),
        (
            &["--pkcs11-module", "/x.so", "--pkcs11-token", "t", "status"][..],
            "MEDSEC_AGENT_PKCS11_PIN",
        ),
        (
            &["--pkcs11-pin-file", "/p", "status"][..],
            "--pkcs11-module",
        ),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_medsec-agent"))
            .arg("--state-dir")
            .arg(t.path().join("s"))
            .arg("--trust-root")
            .arg(t.path().join("root.pem"))
            .args(args)
            .env_remove("MEDSEC_AGENT_PKCS11_MODULE")
            .env_remove("MEDSEC_AGENT_PKCS11_TOKEN")
            .env_remove("MEDSEC_AGENT_PKCS11_PIN")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        contains(&err, needle);
    }

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

// ---- Device keys in a PKCS#11 token (SoftHSM2) ----

const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const HSM_TOKEN: &str = "medsec-device";
const HSM_PIN: &str = "1234567890";
const HSM_SO_PIN: &str = "0987654321";

/// A SoftHSM2 token for this test process; the path of its SOFTHSM2_CONF, or `None` when
/// SoftHSM2 is not installed (outside CI, where it must be).
///
/// SOFTHSM2_CONF is set in this process too (SoftHSM reads it when the module is initialized,
/// once per process), for the library calls and the attribute check; the agent binary gets it
/// in its environment.
fn softhsm() -> Option<PathBuf> {
    static CONF: OnceLock<Option<PathBuf>> = OnceLock::new();
    CONF.get_or_init(|| {
        if !Path::new(SOFTHSM_MODULE).exists() {
            if std::env::var_os("CI").is_some() {
                panic!("SoftHSM2 is required in CI: apt-get install softhsm2");
            }
            // Past libtest's output capture, so that the skip shows in a normal run.
            let _ = writeln!(
                std::io::stderr(),
                "skipping the PKCS#11 agent test: {SOFTHSM_MODULE} not found (apt-get install softhsm2)"
            );
            return None;
        }
        // Under target/: statics are never dropped, so a temporary directory could not be
        // cleaned up anyway.
        let dir = tempfile::Builder::new()
            .prefix("agent-softhsm-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        let tokens = dir.join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        // SAFETY: runs once, inside the OnceLock, before anything in this process loads the
        // module; only std touches the environment concurrently (spawning the other tests'
        // processes), and std serializes its own environment access.
        unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(["--init-token", "--free", "--label", HSM_TOKEN])
            .args(["--pin", HSM_PIN, "--so-pin", HSM_SO_PIN])
            .output()
            .expect("softhsm2-util must be on PATH alongside the module");
        assert!(
            out.status.success(),
            "softhsm2-util --init-token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(conf)
    })
    .clone()
}

impl Server {
    /// The agent with its key in the SoftHSM token (PIN from the environment).
    fn agent_hsm(&self, conf: &Path, state: &str, args: &[&str]) -> Output {
        let mut cmd = self.agent_cmd(state, &self.path("root.pem"), "localhost", &[]);
        cmd.args([
            "--pkcs11-module",
            SOFTHSM_MODULE,
            "--pkcs11-token",
            HSM_TOKEN,
        ])
        .args(args)
        .env("SOFTHSM2_CONF", conf)
        .env("MEDSEC_AGENT_PKCS11_PIN", HSM_PIN);
        testlog::secret(HSM_PIN);
        let o = cmd.output().expect("run medsec-agent");
        self.agent_logged(state, args, &o);
        o
    }

    fn agent_hsm_ok(&self, conf: &Path, state: &str, args: &[&str]) -> String {
        let o = self.agent_hsm(conf, state, args);
        assert!(
            o.status.success(),
            "medsec-agent (token key) {args:?} failed ({:?}):\n{}\nserver log:\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        String::from_utf8(o.stdout).unwrap()
    }
}

/// The token key the state directory records: (`pkcs11:object=…`, token label).
fn recorded_key(dir: &Path) -> (String, String) {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("device.keyref")).unwrap()).unwrap();
    (
        v["key"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

/// No private key is in the state directory, under any name.
fn assert_no_key_material(dir: &Path) {
    assert!(!dir.join("device.key").exists(), "device.key exists");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        assert!(
            !String::from_utf8_lossy(&data).contains("PRIVATE KEY"),
            "{} holds a private key",
            path.display()
        );
    }
}

/// Reads the token directly: every private key whose label starts with `prefix` must be
/// sensitive and never extractable, and its value unreadable. Returns their labels.
fn token_private_keys(prefix: &str) -> Vec<String> {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::error::{Error as CkError, RvError};
    use cryptoki::object::{Attribute, AttributeType, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;

    let ctx = Pkcs11::new(SOFTHSM_MODULE).unwrap();
    // The agent library may have initialized the module in this process already.
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("C_Initialize: {e}"),
    }
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == HSM_TOKEN)
        .expect("the test token");
    let session = ctx.open_ro_session(slot).unwrap();
    match session.login(UserType::User, Some(&AuthPin::from(HSM_PIN.to_owned()))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("C_Login: {e}"),
    }
    let mut labels = Vec::new();
    for key in session
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap()
    {
        let attrs = session
            .get_attributes(
                key,
                &[
                    AttributeType::Label,
                    AttributeType::Extractable,
                    AttributeType::NeverExtractable,
                    AttributeType::Sensitive,
                ],
            )
            .unwrap();
        let label = attrs
            .iter()
            .find_map(|a| match a {
                Attribute::Label(l) => Some(String::from_utf8(l.clone()).unwrap()),
                _ => None,
            })
            .unwrap();
        if !label.starts_with(prefix) {
            continue;
        }
        assert!(
            attrs.contains(&Attribute::Extractable(false)),
            "{label}: CKA_EXTRACTABLE must be false: {attrs:?}"
        );
        assert!(
            attrs.contains(&Attribute::NeverExtractable(true)),
            "{label}: {attrs:?}"
        );
        assert!(
            attrs.contains(&Attribute::Sensitive(true)),
            "{label}: {attrs:?}"
        );
        let value = session
            .get_attributes(key, &[AttributeType::Value])
            .unwrap();
        assert!(value.is_empty(), "{label}: CKA_VALUE was readable");
        labels.push(label);
    }
    labels
}

#[test]
fn device_key_in_a_pkcs11_token() {
    let Some(conf) = softhsm() else {
        return;
    };
    let s = Server::start();
    let dev = s.path("hsm1");

    // 1. Enrollment: the key is generated in the token under the default label; the state
    //    directory records it and holds no private key.
    let token = s.token("SN-3003");
    let out = s.agent_hsm_ok(
        &conf,
        "hsm1",
        &["enroll", "--serial", "SN-3003", "--token", &token],
    );
    contains(&out, "enrolled urn:medsec:device:demo-device:SN-3003");
    for f in ["device.keyref", "device.pem", "chain.pem"] {
        assert!(dev.join(f).exists(), "{f} missing");
    }
    assert_no_key_material(&dev);
    assert_eq!(
        recorded_key(&dev),
        ("pkcs11:object=device-key".to_owned(), HSM_TOKEN.to_owned())
    );

    // 2. whoami over mTLS, the handshake signed by the token.
    let (serial1, spki1) = cert_facts(&dev);
    let w: serde_json::Value =
        serde_json::from_str(&s.agent_hsm_ok(&conf, "hsm1", &["whoami"])).unwrap();
    assert_eq!(w["device"], "urn:medsec:device:demo-device:SN-3003");
    assert_eq!(w["certificate"], serial1.as_str());
    // status needs neither the token nor its PIN.
    let status: serde_json::Value =
        serde_json::from_str(&s.agent_ok("hsm1", &["--json", "status"])).unwrap();
    assert_eq!(
        status["key_location"],
        format!("pkcs11:object=device-key in token \"{HSM_TOKEN}\"")
    );
    // Without the token configuration the key cannot be used, and the error says why.
    let err = s.agent_fails("hsm1", &["whoami"]);
    contains(&err, "pkcs11:object=device-key");
    contains(&err, "configure the PKCS#11");
    // A wrong PIN (from a PIN file this time) is refused without being echoed.
    std::fs::write(s.path("wrong.pin"), "5555555555\n").unwrap();
    let o = s.agent_hsm(
        &conf,
        "hsm1",
        &[
            "--pkcs11-pin-file",
            s.path("wrong.pin").to_str().unwrap(),
            "whoami",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    contains(&err, "wrong user PIN");
    assert!(!err.contains("5555555555"), "{err}");
    // The right PIN from a file works.
    std::fs::write(s.path("right.pin"), format!("{HSM_PIN}\n")).unwrap();
    let o = s.agent_hsm(
        &conf,
        "hsm1",
        &[
            "--pkcs11-pin-file",
            s.path("right.pin").to_str().unwrap(),
            "whoami",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // 3. Renewal keeps the token key.
    let out = s.agent_hsm_ok(&conf, "hsm1", &["renew", "--force"]);
    contains(&out, "renewed");
    let (serial2, spki2) = cert_facts(&dev);
    assert_ne!(serial2, serial1);
    assert_eq!(spki2, spki1, "a renewal keeps the key");
    assert_eq!(recorded_key(&dev).0, "pkcs11:object=device-key");
    let w: serde_json::Value =
        serde_json::from_str(&s.agent_hsm_ok(&conf, "hsm1", &["whoami"])).unwrap();
    assert_eq!(w["certificate"], serial2.as_str());

    // 4. Rekey: a new key in the token under a new label.
    let out = s.agent_hsm_ok(&conf, "hsm1", &["renew", "--force", "--rekey"]);
    contains(&out, "rekeyed");
    let (serial3, spki3) = cert_facts(&dev);
    assert_ne!(serial3, serial2);
    assert_ne!(spki3, spki2, "a rekey changes the public key");
    let (key3, _) = recorded_key(&dev);
    assert!(key3.starts_with("pkcs11:object=device-key-"), "{key3}");
    // The replaced key no longer takes up room in the token; the new one is there.
    let labels = token_private_keys("device-key");
    assert!(!labels.iter().any(|l| l == "device-key"), "{labels:?}");
    let label3 = key3.strip_prefix("pkcs11:object=").unwrap();
    assert!(labels.iter().any(|l| l == label3), "{labels:?}");
    let w: serde_json::Value =
        serde_json::from_str(&s.agent_hsm_ok(&conf, "hsm1", &["whoami"])).unwrap();
    assert_eq!(w["certificate"], serial3.as_str());
    assert_no_key_material(&dev);

    // 5. The library API, in this process: an Ed25519 rekey in the token, then whoami.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut cfg = s.config("hsm1");
    cfg.key_algorithm = medsec_core::KeyAlgorithm::Ed25519;
    cfg.pkcs11 = Some(Pkcs11KeyConfig::new(
        SOFTHSM_MODULE,
        HSM_TOKEN,
        zeroize::Zeroizing::new(HSM_PIN.to_owned()),
    ));
    let agent = Agent::new(cfg).unwrap();
    let out = rt
        .block_on(agent.renew_if_due(time::OffsetDateTime::now_utc(), true, true))
        .unwrap();
    assert!(
        matches!(out, medsec_agent::RenewOutcome::Rekeyed { .. }),
        "{out:?}"
    );
    let (key4, _) = recorded_key(&dev);
    assert_ne!(key4, key3, "every rekey gets its own label");
    let labels = token_private_keys("device-key");
    assert!(!labels.iter().any(|l| l == label3), "{labels:?}");
    let (serial4, _) = cert_facts(&dev);
    let me = rt.block_on(agent.whoami()).unwrap();
    assert_eq!(me.certificate.to_hex(), serial4);
    let st = agent.status(time::OffsetDateTime::now_utc()).unwrap();
    assert_eq!(st.key_algorithm, medsec_core::KeyAlgorithm::Ed25519);
    assert_no_key_material(&dev);

    // 6. A device enrolled with a key file moves its key into the token with a rekey; the
    //    plaintext key file is gone afterwards.
    let dev2 = s.path("hsm2");
    let token2 = s.token("SN-3004");
    s.agent_ok(
        "hsm2",
        &["enroll", "--serial", "SN-3004", "--token", &token2],
    );
    assert!(dev2.join("device.key").exists());
    let out = s.agent_hsm_ok(&conf, "hsm2", &["renew", "--force", "--rekey"]);
    contains(&out, "rekeyed");
    assert_no_key_material(&dev2);
    let (key5, token5) = recorded_key(&dev2);
    assert!(key5.starts_with("pkcs11:object=device-key-"), "{key5}");
    assert_eq!(token5, HSM_TOKEN);
    let w: serde_json::Value =
        serde_json::from_str(&s.agent_hsm_ok(&conf, "hsm2", &["whoami"])).unwrap();
    assert_eq!(w["serial"], "SN-3004");
    assert_eq!(w["certificate"], cert_facts(&dev2).0.as_str());

    // A refused enrollment leaves no key behind in the token.
    let before = token_private_keys("device-key");
    let o = s.agent_hsm(
        &conf,
        "hsm-refused",
        &[
            "enroll",
            "--serial",
            "SN-3007",
            "--token",
            "not-a-valid-token",
        ],
    );
    assert!(!o.status.success());
    assert_eq!(token_private_keys("device-key"), before);

    // 7. More devices enrolling into the same token: the default label, freed by hsm1's
    //    rekey, is used again; once it is taken, the next key gets a stamped one and the
    //    other key is neither reused nor replaced.
    let token3 = s.token("SN-3005");
    s.agent_hsm_ok(
        &conf,
        "hsm3",
        &["enroll", "--serial", "SN-3005", "--token", &token3],
    );
    let (key6, _) = recorded_key(&s.path("hsm3"));
    assert_eq!(key6, "pkcs11:object=device-key");
    let token4 = s.token("SN-3006");
    s.agent_hsm_ok(
        &conf,
        "hsm4",
        &["enroll", "--serial", "SN-3006", "--token", &token4],
    );
    let (key7, _) = recorded_key(&s.path("hsm4"));
    assert!(key7.starts_with("pkcs11:object=device-key-"), "{key7}");
    for (state, serial) in [("hsm3", "SN-3005"), ("hsm4", "SN-3006")] {
        let w: serde_json::Value =
            serde_json::from_str(&s.agent_hsm_ok(&conf, state, &["whoami"])).unwrap();
        assert_eq!(w["serial"], serial);
    }
    // hsm1 still works with its own key.
    let w: serde_json::Value =
        serde_json::from_str(&s.agent_hsm_ok(&conf, "hsm1", &["whoami"])).unwrap();
    assert_eq!(w["certificate"], serial4.as_str());

    // 8. In the token, every device key is non-extractable; exactly the current ones are
    //    there (the keys hsm1's rekeys replaced are gone).
    let mut labels = token_private_keys("device-key");
    labels.sort();
    let mut current: Vec<String> = [&key4, &key5, &key6, &key7]
        .iter()
        .map(|k| k.strip_prefix("pkcs11:object=").unwrap().to_owned())
        .collect();
    current.sort();
    assert_eq!(labels, current);
}

/// Secure updates end to end: `medsec tuf init`, `release publish`, `rollout create`, the
/// repository served by `medsec serve` under /tuf/, and the agent checking, installing and
/// confirming over mTLS; a device outside the cohort is offered nothing; pause and abort take
/// effect at once; python-tuf reads the same served repository, also after a root rotation.
#[test]
fn secure_update_against_a_real_server() {
    let s = Server::start();
    s.medsec_ok(&["tuf", "init"]);
    let root = s.path("1.root.json");
    let director = s.path("director.json");
    s.medsec_ok(&[
        "tuf",
        "root",
        "--version",
        "1",
        "--out",
        root.to_str().unwrap(),
    ]);
    s.medsec_ok(&["director", "key", "--out", director.to_str().unwrap()]);
    for d in ["UP-1", "UP-2"] {
        let t = s.token(d);
        s.agent_ok(d, &["enroll", "--serial", d, "--token", &t]);
    }
    let image: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(s.path("fw-2.0.bin"), &image).unwrap();
    let rel: serde_json::Value = serde_json::from_str(&s.medsec_ok(&[
        "--json",
        "release",
        "publish",
        "--model",
        "demo-device",
        "--version",
        "2.0",
        "--security-version",
        "2",
        s.path("fw-2.0.bin").to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(rel["target"], "demo-device/demo-device-2.0.bin");
    // A lower security version is refused and publishes nothing.
    let o = s.medsec(&[
        "release",
        "publish",
        "--model",
        "demo-device",
        "--version",
        "1.9",
        "--security-version",
        "1",
        s.path("fw-2.0.bin").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let ro: serde_json::Value = serde_json::from_str(&s.medsec_ok(&[
        "--json",
        "rollout",
        "create",
        "--model",
        "demo-device",
        "--version",
        "2.0",
        "--cohort",
        "devices:urn:medsec:device:demo-device:UP-1",
        "--stages",
        "100",
    ]))
    .unwrap();
    let ro = ro["id"].as_str().unwrap().to_owned();
    let tuf_url = format!("http://{}/tuf", s.http);
    let up = |cmd: &str| -> Vec<String> {
        vec![
            "--json".into(),
            "update".into(),
            cmd.into(),
            "--tuf-url".into(),
            tuf_url.clone(),
            "--tuf-root".into(),
            root.display().to_string(),
            "--director-keys".into(),
            director.display().to_string(),
        ]
    };
    let run = |dev: &str, cmd: &str| -> serde_json::Value {
        let args = up(cmd);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        serde_json::from_str(&s.agent_ok(dev, &a)).unwrap()
    };
    // Outside the cohort: nothing offered.
    assert!(run("UP-2", "check")["offer"].is_null());
    let offer = run("UP-1", "check");
    assert_eq!(
        offer["offer"]["instruction"]["target"],
        "demo-device/demo-device-2.0.bin"
    );
    let inst = run("UP-1", "install");
    assert_eq!(
        inst["installed"]["target"],
        "demo-device/demo-device-2.0.bin"
    );
    // The active slot holds exactly the published image.
    let slot = inst["slot"]
        .as_str()
        .map(str::to_lowercase)
        .unwrap_or_default();
    let bytes = std::fs::read(s.path(&format!("UP-1/update/slot-{slot}.bin"))).unwrap();
    assert!(bytes == image, "slot {slot} differs from the image");
    run("UP-1", "confirm");
    let view: serde_json::Value =
        serde_json::from_str(&s.medsec_ok(&["--json", "rollout", "show", &ro])).unwrap();
    assert_eq!(view["stages"][0]["by_status"]["confirmed"], 1, "{view}");
    // Confirmed: not offered again.
    assert!(run("UP-1", "check")["offer"].is_null());

    // A second release to everyone: pause and abort take effect at once.
    std::fs::write(s.path("fw-2.1.bin"), b"firmware 2.1").unwrap();
    s.medsec_ok(&[
        "release",
        "publish",
        "--model",
        "demo-device",
        "--version",
        "2.1",
        "--security-version",
        "3",
        s.path("fw-2.1.bin").to_str().unwrap(),
    ]);
    let r2: serde_json::Value = serde_json::from_str(&s.medsec_ok(&[
        "--json",
        "rollout",
        "create",
        "--model",
        "demo-device",
        "--version",
        "2.1",
        "--cohort",
        "percent:100",
        "--stages",
        "100",
    ]))
    .unwrap();
    let r2 = r2["id"].as_str().unwrap().to_owned();
    s.medsec_ok(&["rollout", "pause", &r2]);
    assert!(run("UP-2", "check")["offer"].is_null());
    s.medsec_ok(&["rollout", "resume", &r2]);
    assert_eq!(
        run("UP-2", "check")["offer"]["instruction"]["target"],
        "demo-device/demo-device-2.1.bin"
    );
    s.medsec_ok(&["rollout", "abort", &r2]);
    assert!(run("UP-2", "check")["offer"].is_null());

    // python-tuf against the repository as `medsec serve` serves it, then after a rotation.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../updates/tests/tuf_client.py");
    let py = |label: &str| -> serde_json::Value {
        let md = s.path(&format!("py-{label}"));
        if !md.exists() {
            std::fs::create_dir_all(&md).unwrap();
            std::fs::copy(&root, md.join("root.json")).unwrap();
        }
        let dl = s.path(&format!("py-dl-{label}"));
        std::fs::create_dir_all(&dl).unwrap();
        let o = Command::new("python3")
            .arg(&script)
            .arg(format!("{tuf_url}/metadata/"))
            .arg(format!("{tuf_url}/targets/"))
            .arg(&md)
            .arg(&dl)
            .arg("demo-device/demo-device-2.0.bin")
            .output()
            .expect("python3");
        assert!(
            o.status.success(),
            "python-tuf failed (pip install tuf==7.0.1):\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let v = py("a");
    assert_eq!(v["length"], image.len());
    assert_eq!(v["root_version"], 1);
    let keys: serde_json::Value =
        serde_json::from_str(&s.medsec_ok(&["--json", "tuf", "keys"])).unwrap();
    let old = keys["root"][0].as_str().unwrap().to_owned();
    s.medsec_ok(&["tuf", "rotate-root", "--add", "1", "--retire", &old]);
    let v = py("a");
    assert_eq!(v["root_version"], 2);
    assert_eq!(v["custom"]["security_version"], 2);
}

// ---- Security events ----

impl Server {
    /// A new API token with `role`.
    fn api_token(&self, role: &str) -> String {
        let out = self.medsec_ok(&[
            "--json",
            "apitoken",
            "create",
            "--name",
            &format!("agent-e2e-{role}"),
            "--role",
            role,
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let t = v["token"].as_str().expect("token field").to_owned();
        testlog::secret(&t);
        t
    }

    /// `GET /api/v1/<path>` on the HTTPS listener with an API token (curl); the JSON answer.
    fn api(&self, token: &str, path: &str) -> serde_json::Value {
        let o = Command::new("curl")
            .args(["-sS", "--max-time", "20", "--fail-with-body", "--cacert"])
            .arg(self.path("root.pem"))
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .arg(format!("https://{}/api/v1/{path}", self.https))
            .output()
            .expect("curl must be installed");
        assert!(
            o.status.success(),
            "GET /api/v1/{path}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }

    fn agent_json(&self, state: &str, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.agent_ok(state, &a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }
}

/// (delivered, accepted, duplicates, batches) of a flush report.
fn flushed(v: &serde_json::Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    (n("delivered"), n("accepted"), n("duplicates"), n("batches"))
}

/// The agent records events (CLI and library), spools them and delivers them over mTLS; the
/// server lists them for the device its certificate names, and its rules open incidents. A
/// flush during an outage keeps the spool and a later one delivers it exactly once; so does
/// one after the agent crashed between recording and flushing.
#[test]
fn security_events_reach_the_server_exactly_once() {
    let mut s = Server::start();
    let t = s.token("EV-1");
    s.agent_ok("ev1", &["enroll", "--serial", "EV-1", "--token", &t]);
    let urn = "urn:medsec:device:demo-device:EV-1";
    let auditor = s.api_token("auditor");
    let listed = |s: &Server| -> Vec<serde_json::Value> {
        s.api(
            &auditor,
            &format!("events?device={urn}&limit=1000&order=oldest"),
        )["events"]
            .as_array()
            .unwrap()
            .clone()
    };
    let ids_of = |events: &[serde_json::Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["event"]["id"].as_str().unwrap().to_owned())
            .collect()
    };

    // 1. Five authentication failures within a few minutes, a tamper, a config change.
    let now = time::OffsetDateTime::now_utc();
    let mut ids = Vec::new();
    for i in 0..5 {
        let at = (now - time::Duration::minutes(4 - i))
            .format(&Rfc3339)
            .unwrap();
        let attempt = format!("attempt={i}");
        let r = s.agent_json(
            "ev1",
            &[
                "events",
                "record",
                "--type",
                "auth-failure",
                "--severity",
                "medium",
                "--detail",
                "user=service",
                "--detail",
                &attempt,
                "--time",
                &at,
            ],
        );
        assert_eq!(r["dropped"], 0);
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    let out = s.agent_ok(
        "ev1",
        &[
            "events",
            "record",
            "--type",
            "tamper",
            "--severity",
            "high",
            "--detail",
            "sensor=enclosure",
        ],
    );
    contains(&out, "recorded tamper event");
    ids.push(out.split_whitespace().nth(3).unwrap().to_owned());
    let r = s.agent_json(
        "ev1",
        &[
            "events",
            "record",
            "--type",
            "config-changed",
            "--severity",
            "low",
            "--by",
            "local:tech",
            "--detail",
            "setting=dose-limit",
        ],
    );
    ids.push(r["id"].as_str().unwrap().to_owned());
    // What the server would refuse is refused here, as a usage error, and not spooled.
    for (args, needle) in [
        (
            &["--type", "config-changed", "--severity", "low"][..],
            "--by",
        ),
        (
            &["--type", "tamper", "--severity", "high", "--by", "x"][..],
            "--by",
        ),
        (&["--type", "meteor", "--severity", "high"][..], "--type"),
        (
            &["--type", "tamper", "--severity", "urgent"][..],
            "--severity",
        ),
        (
            &["--type", "tamper", "--severity", "high", "--time", "noon"][..],
            "--time",
        ),
    ] {
        let mut a = vec!["events", "record"];
        a.extend_from_slice(args);
        let o = s.agent("ev1", &a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        contains(&err, needle);
    }
    let st = s.agent_json("ev1", &["events", "status"]);
    assert_eq!(
        (st["spooled"].as_u64(), st["rejected"].as_u64()),
        (Some(7), Some(0))
    );
    assert!(st["last_flush"].is_null());

    // 2. Flush: one batch, all new; the burst opens the auth-failure-burst incident.
    let f = s.agent_json("ev1", &["events", "flush"]);
    assert_eq!(flushed(&f), (7, 7, 0, 1), "{f}");
    assert_eq!(f["remaining"], 0);
    let touched: Vec<&str> = f["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["rule"].as_str().unwrap())
        .collect();
    assert!(touched.contains(&"auth-failure-burst"), "{f}");
    let events = listed(&s);
    assert_eq!(ids_of(&events), ids, "all seven, in order, once each");
    for e in &events {
        // Attributed from the client certificate.
        assert_eq!(e["device"]["serial"], "EV-1", "{e}");
        assert_eq!(e["source"], "device");
    }
    assert_eq!(events[0]["event"]["details"]["user"], "service");
    assert_eq!(events[5]["event"]["kind"]["type"], "tamper");
    assert_eq!(events[5]["event"]["severity"], "high");
    assert_eq!(events[6]["event"]["kind"]["type"], "config-changed");
    assert_eq!(events[6]["event"]["kind"]["by"], "local:tech");
    let incidents = s.api(&auditor, "incidents");
    let burst = incidents["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["rule"] == "auth-failure-burst")
        .unwrap_or_else(|| panic!("no auth-failure-burst incident: {incidents}"));
    assert!(burst["devices"].get(urn).is_some(), "{burst}");

    // 3. Nothing left: a second flush sends nothing.
    let f = s.agent_json("ev1", &["events", "flush"]);
    assert_eq!(flushed(&f), (0, 0, 0, 0), "{f}");
    contains(&s.agent_ok("ev1", &["events", "flush"]), "nothing to send");
    assert_eq!(listed(&s).len(), 7);

    // 4. The server goes down: the flush fails, says so, and keeps everything.
    for (ty, sev) in [("unusual-connection", "info"), ("debug-port", "critical")] {
        let r = s.agent_json(
            "ev1",
            &["events", "record", "--type", ty, "--severity", sev],
        );
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    s.stop();
    let err = s.agent_fails("ev1", &["events", "flush"]);
    contains(&err, "cannot connect");
    contains(&err, "2 events stay spooled");
    let st = s.agent_json("ev1", &["events", "status"]);
    assert_eq!(st["spooled"], 2);
    contains(
        st["last_flush"]["error"].as_str().unwrap(),
        "cannot connect",
    );
    // Back up (new ports): delivered exactly once.
    s.restart();
    let f = s.agent_json("ev1", &["events", "flush"]);
    assert_eq!(flushed(&f), (2, 2, 0, 1), "{f}");
    assert_eq!(ids_of(&listed(&s)), ids);
    let f = s.agent_json("ev1", &["events", "flush"]);
    assert_eq!(flushed(&f), (0, 0, 0, 0), "{f}");

    // 5. A file of events with their own ids: sending it again stores nothing twice.
    let file = s.path("events.json");
    let at = time::OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    std::fs::write(
        &file,
        serde_json::to_string(&serde_json::json!([
            {"id": "file-1", "time": at, "type": "update-failure", "severity": "medium",
             "details": {"target": "demo-device-2.0.bin"}},
            {"id": "file-2", "time": at, "type": "certificate-rejected", "severity": "low"},
        ]))
        .unwrap(),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let v = s.agent_json("ev1", &["events", "send", file]);
    assert_eq!(flushed(&v["flush"]), (2, 2, 0, 1), "{v}");
    let v = s.agent_json("ev1", &["events", "send", file]);
    assert_eq!(flushed(&v["flush"]), (2, 0, 2, 1), "{v}");
    ids.extend(["file-1".to_owned(), "file-2".to_owned()]);
    assert_eq!(ids_of(&listed(&s)), ids);
    // A file the server would refuse is refused whole, before anything is spooled or sent.
    let bad = s.path("bad.json");
    std::fs::write(
        &bad,
        format!(
            r#"[{{"id":"file-3","time":"{at}","type":"tamper","severity":"high"}},
               {{"id":"file-4","time":"{at}","type":"tamper","severity":"severe"}}]"#
        ),
    )
    .unwrap();
    let err = s.agent_fails("ev1", &["events", "send", bad.to_str().unwrap()]);
    contains(&err, "[1].severity");
    assert_eq!(s.agent_json("ev1", &["events", "status"])["spooled"], 0);

    // 6. A crash between record and flush (the library, dropped without flushing), and one
    //    in the middle of the next append: the recorded event is delivered after a restart.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let crashed = {
        let r = EventReporter::new(s.config("ev1"));
        r.record(
            NewEvent::new(EventType::FirmwareIntegrityFailure, Severity::Critical)
                .detail("slot", "b"),
        )
        .unwrap()
        .id
    };
    let spool = s.path("ev1").join("events").join("spool.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&spool)
        .unwrap();
    f.write_all(br#"{"id":"torn","time":"20"#).unwrap();
    drop(f);
    let r = EventReporter::new(s.config("ev1"));
    let rep = rt.block_on(r.flush()).unwrap();
    assert_eq!((rep.delivered, rep.accepted, rep.rejected), (1, 1, 0));
    ids.push(crashed);
    assert_eq!(ids_of(&listed(&s)), ids);

    // 7. An event the server refuses (here one written by hand, as an older agent might
    //    have) is moved aside with the server's reason; the rest is delivered.
    let good = s.agent_json(
        "ev1",
        &["events", "record", "--type", "tamper", "--severity", "low"],
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&spool)
        .unwrap();
    writeln!(
        f,
        r#"{{"id":"bad id","time":"{at}","type":"tamper","severity":"high"}}"#
    )
    .unwrap();
    drop(f);
    let err = s.agent_fails("ev1", &["events", "flush"]);
    contains(&err, "refused 1 events");
    ids.push(good);
    assert_eq!(ids_of(&listed(&s)), ids);
    let st = s.agent_json("ev1", &["events", "status"]);
    assert_eq!(
        (st["spooled"].as_u64(), st["rejected"].as_u64()),
        (Some(0), Some(1))
    );
    let rejected =
        std::fs::read_to_string(s.path("ev1").join("events").join("rejected.jsonl")).unwrap();
    contains(&rejected, "bad id");
    contains(&rejected, "[0].id");
}
