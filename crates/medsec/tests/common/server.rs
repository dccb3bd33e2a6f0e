//! `medsec serve` as a child process and the curl/openssl helpers the server tests share.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use super::*;

pub struct Server {
    pub child: Child,
    pub http: String,
    pub https: String,
    pub device: String,
    /// Set when the server runs a syslog listener.
    pub syslog: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(env: &Env) -> Server {
    start_with(env, &[])
}

/// `medsec serve` with each listener on a loopback port of the kernel's choosing (the server
/// prints the addresses on its first line of stdout).
pub const SERVE_ON_LOOPBACK: [&str; 7] = [
    "serve",
    "--http",
    "127.0.0.1:0",
    "--https",
    "127.0.0.1:0",
    "--device",
    "127.0.0.1:0",
];

/// Starts `medsec serve` on loopback ports with extra arguments (e.g. `--syslog 127.0.0.1:0`).
pub fn start_with(env: &Env, extra: &[&str]) -> Server {
    // With MEDSEC_TEST_LOG_DIR the server's stdout and stderr go to a file of their own there
    // (scripts/secrets-in-logs.sh reads them); MEDSEC_TEST_SERVER_LOG=1 shows the log when a
    // test needs debugging.
    let log = testlog::new_log("medsec-serve");
    let stderr = match &log {
        Some(p) => Stdio::from(testlog::append(p)),
        None if std::env::var_os("MEDSEC_TEST_SERVER_LOG").is_some() => Stdio::inherit(),
        None => Stdio::null(),
    };
    testlog::secret_env(env.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut child = Command::new(env!("CARGO_BIN_EXE_medsec"))
        .envs(testlog::server_env())
        .arg("--data-dir")
        .arg(env.data())
        .args(SERVE_ON_LOOPBACK)
        .args(extra)
        .env("MEDSEC_KEY_PASSPHRASE", PASSPHRASE)
        // The same extra environment as the CLI runs (e.g. MEDSEC_DATABASE_URL for PostgreSQL).
        .envs(env.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    if let Some(p) = &log {
        // The rest of stdout too, for as long as the server runs.
        let mut f = testlog::append(p);
        let _ = f.write_all(line.as_bytes());
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut f));
    }
    let get = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k}= in {line:?}"))
            .to_owned()
    };
    let s = Server {
        http: get("http"),
        https: get("https"),
        device: get("device"),
        syslog: line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("syslog="))
            .map(str::to_owned),
        child,
    };
    env.write_trust();
    s
}

/// curl in the test's directory: (body, HTTP status; "000" and curl's own message as the body
/// when there was no HTTP answer).
pub fn curl(env: &Env, args: &[&str]) -> (String, String) {
    curl_in(env.dir.path(), args)
}

/// curl run in `dir`, as [`curl`].
pub fn curl_in(dir: &std::path::Path, args: &[&str]) -> (String, String) {
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("curl must be installed");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    if code == "000" {
        // No HTTP answer: curl's own message says why (refused handshake, reset, timeout).
        return (
            format!("{body}{}", String::from_utf8_lossy(&o.stderr)),
            code.to_owned(),
        );
    }
    (body.to_owned(), code.to_owned())
}

/// curl in `dir` as device `name` (its `<name>.pem` and `<name>.key` there) with a JSON body;
/// `extra` holds the body and the URL.
pub fn curl_as_device(dir: &std::path::Path, name: &str, extra: &[&str]) -> (String, String) {
    let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
    let mut a = vec![
        "--cacert",
        "root.pem",
        "--cert",
        &pem,
        "--key",
        &key,
        "-H",
        "Content-Type: application/json",
    ];
    a.extend_from_slice(extra);
    curl_in(dir, &a)
}

/// POST a base64 CSR file to a simpleenroll URL with a one-time token as HTTP Basic password.
pub fn est_enroll(env: &Env, url: &str, serial: &str, token: &str, body: &str) -> (String, String) {
    curl(
        env,
        &[
            "--cacert",
            "root.pem",
            "-u",
            &format!("{serial}:{token}"),
            "-H",
            "Content-Type: application/pkcs10",
            "--data-binary",
            body,
            url,
        ],
    )
}

pub fn b64_csr(env: &Env, name: &str, kind: &str, subj: &str) -> String {
    let csr = env.openssl_csr(name, kind, &["-subj", subj]);
    env.openssl_ok(&[
        "req",
        "-in",
        csr.to_str().unwrap(),
        "-outform",
        "DER",
        "-out",
        &format!("{name}.der"),
    ]);
    env.openssl_ok(&[
        "base64",
        "-in",
        &format!("{name}.der"),
        "-out",
        &format!("{name}.b64"),
    ]);
    format!("@{name}.b64")
}

pub fn p7_to_pem(env: &Env, b64: &str, out: &str) {
    std::fs::write(env.path("p7.b64"), b64).unwrap();
    env.openssl_ok(&["base64", "-d", "-in", "p7.b64", "-out", "p7.der"]);
    env.openssl_ok(&[
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        "p7.der",
        "-print_certs",
        "-out",
        out,
    ]);
}

pub fn token(env: &Env, device: &str) -> String {
    let t = env.json(&[
        "token",
        "create",
        "--profile",
        "default",
        "--device",
        device,
    ])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    testlog::secret(&t);
    t
}

/// A new API token with `role`, as the `Authorization` header value.
pub fn api_auth(env: &Env, role: &str) -> String {
    let t = env.json(&[
        "apitoken",
        "create",
        "--name",
        &format!("{role}-{}", std::process::id()),
        "--role",
        role,
    ])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    testlog::secret(&t);
    format!("Authorization: Bearer {t}")
}

/// Enrolls device `serial` of the default profile over EST with a fresh token; leaves
/// `<name>.pem` and `<name>.key` in the test directory.
pub fn enroll(env: &Env, srv: &Server, serial: &str, name: &str) {
    let tok = token(env, serial);
    let csr = b64_csr(env, name, "p256", &format!("/CN={serial}"));
    let (body, code) = est_enroll(
        env,
        &format!("https://{}/.well-known/est/simpleenroll", srv.https),
        serial,
        &tok,
        &csr,
    );
    assert_eq!(code, "200", "{body}");
    p7_to_pem(env, &body, &format!("{name}.pem"));
}
