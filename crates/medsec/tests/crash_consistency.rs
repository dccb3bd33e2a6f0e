//! Crash consistency (issue 12): the processes that write are killed with SIGKILL at random
//! points while they write, on one SQLite data directory, iteration after iteration:
//! - `medsec serve` during EST issuance (one-time tokens), revocation through the API, SBOM
//!   upload, OSV advisory import (zip) and device event ingest over mTLS;
//! - the `medsec` CLI during `cert revoke`, `sbom import`, `vuln import` and
//!   `release publish` (the only writer of releases: TUF repository, then database).
//!
//! After every kill: the store opens (migrations checked) and the next `serve` starts,
//! `medsec audit verify` passes, no certificate serial is duplicated, every acknowledged write
//! (HTTP 2xx, or CLI exit 0 with its JSON) is stored exactly as acknowledged, and what was
//! interrupted is whole or absent: a certificate with its token spent (or neither), an SBOM
//! with all its components, an advisory import with all its records, an event batch with all
//! its events; a release is recorded only with its TUF metadata verifying, its image on disk
//! with the recorded hash and its SBOM stored, and one left in the TUF repository but not
//! recorded is completed by running the same `release publish` again. The restarted server's
//! CRL lists every revocation stored.
//!
//! Reproduce with the printed seed. Environment: `MEDSEC_CRASH_ITERATIONS` (default 30),
//! `MEDSEC_CRASH_SEED` (default from the clock), `MEDSEC_BIN` (default: this build's medsec),
//! `MEDSEC_CRASH_SUMMARY` (write the Markdown summary to this file),
//! `MEDSEC_CRASH_KEEP=1` (keep the data directory). `scripts/crash-consistency.sh N` runs the
//! release binary.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::server::{SERVE_ON_LOOPBACK, curl_as_device, curl_in};
use medsec_ca::Ca;
use medsec_core::{Actor, DeviceModel, DeviceSerial, Name};
use medsec_store::{SqliteStore, Synchronous};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

const PASSPHRASE: &str = "crash consistency passphrase";
/// Model of the SBOMs imported on their own (API and `sbom import`).
const SBOM_MODEL: &str = "cc-pump";
/// Model of the releases (the demo profile's model; its SBOMs come with the releases).
const RELEASE_MODEL: &str = "demo-device";
/// Devices that post events; their certificates are never revoked by the harness.
const EVENT_DEVICES: [&str; 2] = ["EV-1", "EV-2"];
/// The kill lands this long (at most) after the server's lanes start.
const WINDOW_MS: u64 = 300;
/// Lanes start within this long after the burst's start.
const LANE_SPREAD_MS: u64 = 100;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
enum Kind {
    Issue,
    Revoke,
    Sbom,
    Advisory,
    Release,
    Events,
}

const KINDS: [Kind; 6] = [
    Kind::Issue,
    Kind::Revoke,
    Kind::Sbom,
    Kind::Advisory,
    Kind::Release,
    Kind::Events,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Issue => "issuance (EST, serve)",
            Kind::Revoke => "revocation (API: serve; `cert revoke`: CLI)",
            Kind::Sbom => "SBOM import (API: serve; `sbom import`: CLI)",
            Kind::Advisory => "advisory import (API: serve; `vuln import`: CLI)",
            Kind::Release => "release publish (`release publish`: CLI)",
            Kind::Events => "event ingest (mTLS gateway, serve)",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Via {
    Server,
    Cli,
}

/// SplitMix64: small, seedable, good enough to pick operations and delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in lo..=hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[(self.next() % v.len() as u64) as usize]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b))
}

fn serial_of(der: &[u8]) -> String {
    let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
    hex::encode(c.raw_serial())
}

fn csr() -> (rcgen::KeyPair, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let der = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .der()
        .to_vec();
    (key, der)
}

enum Spec {
    Issue {
        device: String,
        token: String,
        csr: Vec<u8>,
    },
    Revoke {
        serial: String,
        reason: &'static str,
    },
    Sbom {
        version: String,
        file: PathBuf,
        sha256: String,
        components: usize,
    },
    Advisory {
        file: PathBuf,
        prefix: String,
        /// id -> SHA-256 of the record's bytes (what the store keeps as `raw`).
        records: BTreeMap<String, String>,
    },
    Release {
        version: String,
        sv: u64,
        image: PathBuf,
        sha256: String,
        length: u64,
        /// File, SHA-256, component count.
        sbom: Option<(PathBuf, String, usize)>,
    },
    Events {
        device: usize,
        file: PathBuf,
        prefix: String,
        count: usize,
    },
}

struct Op {
    kind: Kind,
    via: Via,
    spec: Spec,
    /// The lane (one thread sending its operations back to back) the operation is in.
    lane: usize,
}

enum Outcome {
    /// HTTP 2xx or CLI exit 0 with JSON: the certificate for EST, the JSON otherwise.
    Acked(Value, Option<Vec<u8>>),
    /// No answer (connection reset, killed process): the write may or may not have happened.
    Lost(String),
    /// An answer refusing the operation, or a CLI error exit not caused by the kill.
    Refused(String),
    /// The kill came before the operation was sent.
    NotStarted,
}

struct Done {
    outcome: Outcome,
    finished: Instant,
}

/// CLI children, killed together with the server.
#[derive(Default)]
struct Killer {
    killed: bool,
    children: Vec<(usize, Child)>,
}

/// Per-kind counts for the summary.
#[derive(Default, Clone)]
struct Tally {
    ops: usize,
    via_server: usize,
    via_cli: usize,
    acked: usize,
    interrupted_committed: usize,
    interrupted_absent: usize,
    not_started: usize,
    /// Iterations whose kill caught at least one operation of this kind unanswered.
    kills: usize,
    /// Releases found in the TUF repository but not recorded, completed by a re-run.
    completed_by_rerun: usize,
}

/// What was acknowledged, re-checked at the end.
#[derive(Default)]
struct Ledger {
    certs: Vec<(String, Vec<u8>)>,
    serials: HashSet<String>,
    revoked: Vec<(String, String)>,
    sboms: Vec<(String, String, String, usize)>,
    /// Every SBOM ever sent, acknowledged or not: (model, version) -> (sha256, components).
    sbom_expected: HashMap<(String, String), (String, usize)>,
    advisories: Vec<(String, BTreeMap<String, String>)>,
    events: Vec<(String, String, usize)>,
    releases: Vec<Value>,
    /// Certificates acknowledged and not yet chosen for revocation.
    revocable: Vec<String>,
}

struct Server {
    child: Child,
    addrs: Addrs,
}

/// Where a started server listens.
struct Addrs {
    http: String,
    https: String,
    device: String,
}

struct Harness {
    bin: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    rt: tokio::runtime::Runtime,
    root_pem: Vec<u8>,
    api: String,
}

impl Harness {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--data-dir")
            .arg(&self.data)
            .current_dir(&self.dir)
            .env("MEDSEC_KEY_PASSPHRASE", PASSPHRASE)
            .env_remove("MEDSEC_DATA_DIR")
            .env_remove("MEDSEC_CONFIG")
            .env_remove("MEDSEC_DATABASE_URL")
            .env_remove("MEDSEC_KEY_PASSPHRASE_FILE");
        c
    }

    fn cli(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run medsec")
    }

    fn cli_json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let o = self.cli(&a);
        assert!(
            o.status.success(),
            "medsec {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }

    fn start_server(&self) -> Result<Server, String> {
        let log = std::fs::File::create(self.dir.join("serve.log")).unwrap();
        let mut child = self
            .cmd()
            .args(SERVE_ON_LOOPBACK)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let _ = out.read_line(&mut line);
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        });
        let get = |k: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{k}=")))
                .map(str::to_owned)
        };
        match (get("http"), get("https"), get("device")) {
            (Some(http), Some(https), Some(device)) => Ok(Server {
                child,
                addrs: Addrs {
                    http,
                    https,
                    device,
                },
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "`medsec serve` did not start: {}",
                    std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
                ))
            }
        }
    }

    fn est(&self, srv: &Server) -> Arc<medsec_agent::EstClient> {
        Arc::new(
            medsec_agent::EstClient::new(
                &srv.addrs.https,
                "127.0.0.1",
                &self.root_pem,
                medsec_agent::Timeouts::default(),
            )
            .unwrap(),
        )
    }

    fn open_store(&self) -> Result<SqliteStore, String> {
        self.rt
            .block_on(SqliteStore::open(
                &self.data.join("medsec.db"),
                Synchronous::Full,
            ))
            .map_err(|e| format!("the store does not open: {e}"))
    }

    fn tokens(&self, store: &SqliteStore, devices: &[String]) -> Vec<String> {
        let keys_dir = self.dir.join("unused-keys");
        let pass = medsec_keys::Passphrase::new(b"unused by token creation".to_vec()).unwrap();
        let keys = Arc::new(medsec_keys::EncryptedFileKeySource::new(keys_dir, pass));
        let ca = Ca::new(store.clone(), keys);
        let actor = Actor::parse("test:crash").unwrap();
        let profile = Name::parse("default").unwrap();
        self.rt.block_on(async {
            let mut out = Vec::new();
            for d in devices {
                let (secret, _) = ca
                    .create_enrollment_token(
                        &profile,
                        &DeviceSerial::parse(d).unwrap(),
                        time::Duration::hours(2),
                        &actor,
                    )
                    .await
                    .unwrap();
                out.push(secret);
            }
            out
        })
    }
}

/// An admin API write with the harness's token and a body of `content_type`; `rest` holds the
/// method, body and URL.
fn api_write(dir: &Path, bearer: &str, content_type: &str, rest: &[&str]) -> Outcome {
    let content_type = format!("Content-Type: {content_type}");
    let mut args = vec!["--cacert", "root.pem", "-H", bearer, "-H", &content_type];
    args.extend_from_slice(rest);
    let (b, c) = curl_in(dir, &args);
    http_outcome(b, c)
}

fn http_outcome(body: String, code: String) -> Outcome {
    if code.starts_with('2') {
        match serde_json::from_str(&body) {
            Ok(v) => Outcome::Acked(v, None),
            Err(e) => Outcome::Refused(format!("HTTP {code} with a body that is not JSON ({e})")),
        }
    } else if code == "000" {
        Outcome::Lost(body)
    } else {
        Outcome::Refused(format!("HTTP {code}: {body}"))
    }
}

/// Runs a CLI writer that the kill may interrupt.
fn cli_killable(h: &Harness, killer: &Mutex<Killer>, idx: usize, args: &[String]) -> Outcome {
    {
        let mut k = killer.lock().unwrap();
        if k.killed {
            return Outcome::NotStarted;
        }
        let child = h
            .cmd()
            .arg("--json")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        k.children.push((idx, child));
    }
    loop {
        {
            let mut k = killer.lock().unwrap();
            let pos = k.children.iter().position(|(i, _)| *i == idx).unwrap();
            if let Some(status) = k.children[pos].1.try_wait().unwrap() {
                let (_, mut child) = k.children.swap_remove(pos);
                drop(k);
                let (mut out, mut err) = (String::new(), String::new());
                let _ = child.stdout.take().unwrap().read_to_string(&mut out);
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                if status.signal() == Some(9) {
                    return Outcome::Lost("killed".into());
                }
                if !status.success() {
                    return Outcome::Refused(format!("medsec {args:?}: {status}: {err}"));
                }
                return match serde_json::from_str(&out) {
                    Ok(v) => Outcome::Acked(v, None),
                    Err(e) => Outcome::Refused(format!("exit 0 but output not JSON ({e}): {out}")),
                };
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn run_op(
    h: &Harness,
    srv: &Addrs,
    est: &medsec_agent::EstClient,
    killer: &Mutex<Killer>,
    idx: usize,
    op: &Op,
) -> Outcome {
    let dir = h.dir.as_path();
    let bearer = format!("Authorization: Bearer {}", h.api);
    let api = |p: &str| format!("https://{}/api/v1/{p}", srv.https);
    let s = |x: &str| x.to_owned();
    match (&op.spec, op.via) {
        (Spec::Issue { device, token, csr }, _) => {
            let serial = DeviceSerial::parse(device).unwrap();
            match h.rt.block_on(est.simpleenroll(None, csr, &serial, token)) {
                Ok(certs) => {
                    let der = certs.into_iter().next().unwrap();
                    Outcome::Acked(json!({"serial": serial_of(&der)}), Some(der))
                }
                Err(e) => Outcome::Lost(e.to_string()),
            }
        }
        (Spec::Revoke { serial, reason }, Via::Server) => api_write(
            dir,
            &bearer,
            "application/json",
            &[
                "--data",
                &json!({"reason": reason}).to_string(),
                &api(&format!("certificates/{serial}/revoke")),
            ],
        ),
        (Spec::Revoke { serial, reason }, Via::Cli) => cli_killable(
            h,
            killer,
            idx,
            &[s("cert"), s("revoke"), s(serial), s("--reason"), s(reason)],
        ),
        (Spec::Sbom { version, file, .. }, Via::Server) => api_write(
            dir,
            &bearer,
            "application/json",
            &[
                "-X",
                "PUT",
                "--data-binary",
                &format!("@{}", file.display()),
                &api(&format!("firmware/{SBOM_MODEL}/{version}/sbom")),
            ],
        ),
        (Spec::Sbom { version, file, .. }, Via::Cli) => cli_killable(
            h,
            killer,
            idx,
            &[
                s("sbom"),
                s("import"),
                s("--model"),
                s(SBOM_MODEL),
                s("--version"),
                s(version),
                file.display().to_string(),
            ],
        ),
        (Spec::Advisory { file, .. }, Via::Server) => api_write(
            dir,
            &bearer,
            "application/zip",
            &[
                "--data-binary",
                &format!("@{}", file.display()),
                &api("advisories/osv"),
            ],
        ),
        (Spec::Advisory { file, .. }, Via::Cli) => cli_killable(
            h,
            killer,
            idx,
            &[
                s("vuln"),
                s("import"),
                s("--osv"),
                file.display().to_string(),
            ],
        ),
        (
            Spec::Release {
                version,
                sv,
                image,
                sbom,
                ..
            },
            _,
        ) => cli_killable(h, killer, idx, &publish_args(version, *sv, image, sbom)),
        (Spec::Events { device, file, .. }, _) => {
            let (b, c) = curl_as_device(
                dir,
                &format!("ev{device}"),
                &[
                    "--data-binary",
                    &format!("@{}", file.display()),
                    &format!("https://{}/device/v1/events", srv.device),
                ],
            );
            http_outcome(b, c)
        }
    }
}

fn publish_args(
    version: &str,
    sv: u64,
    image: &Path,
    sbom: &Option<(PathBuf, String, usize)>,
) -> Vec<String> {
    let mut a: Vec<String> = [
        "release",
        "publish",
        "--model",
        RELEASE_MODEL,
        "--version",
        version,
        "--security-version",
        &sv.to_string(),
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    if let Some((f, _, _)) = sbom {
        a.push("--sbom".into());
        a.push(f.display().to_string());
    }
    a.push(image.display().to_string());
    a
}

fn cyclonedx(prefix: &str, n: usize) -> Vec<u8> {
    let comps: Vec<Value> = (0..n)
        .map(|j| {
            json!({"type": "library", "name": format!("{prefix}-c{j}"),
                   "version": format!("1.{}.{j}", j % 7),
                   "purl": format!("pkg:npm/{prefix}-c{j}@1.{}.{j}", j % 7)})
        })
        .collect();
    serde_json::to_vec(
        &json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": comps}),
    )
    .unwrap()
}

fn osv_zip(prefix: &str, n: usize) -> (Vec<u8>, BTreeMap<String, String>) {
    use std::io::Write;
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut records = BTreeMap::new();
    for j in 0..n {
        let id = format!("{prefix}{j}");
        let rec = json!({
            "schema_version": "1.6.0", "id": id, "modified": "2026-03-01T12:00:00Z",
            "summary": format!("crash test advisory {j}"),
            "affected": [{"package": {"ecosystem": "npm", "name": format!("cc-pkg-{}", j % 50)},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.0.5"}]}]}]
        })
        .to_string()
        .into_bytes();
        z.start_file(format!("{id}.json"), opts).unwrap();
        z.write_all(&rec).unwrap();
        records.insert(id, sha256_hex(&rec));
    }
    (z.finish().unwrap().into_inner(), records)
}

fn events_batch(rng: &mut Rng, prefix: &str, n: usize) -> Vec<u8> {
    let now = time::OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    let types = [
        ("auth-failure", "medium"),
        ("tamper", "high"),
        ("debug-port", "high"),
        ("unusual-connection", "low"),
        ("update-failure", "medium"),
    ];
    let evs: Vec<Value> = (0..n)
        .map(|j| {
            let (t, sev) = rng.pick(&types);
            json!({"id": format!("{prefix}{j}"), "time": now, "type": t, "severity": sev,
                   "details": {"n": j.to_string()}})
        })
        .collect();
    serde_json::to_vec(&evs).unwrap()
}

#[derive(Default)]
struct Run {
    failures: Vec<String>,
    tally: BTreeMap<Kind, Tally>,
    acked_checked: usize,
    final_checked: usize,
    crl_checks: usize,
    iterations: usize,
}

impl Run {
    fn fail(&mut self, iter: usize, seed: u64, msg: String) {
        let m = format!("iteration {iter} (seed {seed}): {msg}");
        eprintln!("FAILURE {m}");
        self.failures.push(m);
    }
}

fn iterations() -> usize {
    std::env::var("MEDSEC_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

#[test]
fn sigkill_during_writes_leaves_a_consistent_store() {
    let n_iter = iterations();
    let verbose = std::env::var_os("MEDSEC_CRASH_VERBOSE").is_some();
    let seed: u64 = std::env::var("MEDSEC_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                % 1_000_000_000
        });
    let bin = PathBuf::from(
        std::env::var("MEDSEC_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_medsec").to_owned()),
    );
    eprintln!(
        "crash consistency: {n_iter} iterations, MEDSEC_CRASH_SEED={seed}, binary {}",
        bin.display()
    );
    let wall = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("medsec-crash-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().to_path_buf();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("medsec.toml"),
        "[server]\nest_rate_per_sec = 1000000.0\nest_rate_burst = 1000000.0\n",
    )
    .unwrap();
    let mut h = Harness {
        bin,
        dir: dir.clone(),
        data,
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
        root_pem: Vec::new(),
        api: String::new(),
    };
    let mut rng = Rng(seed);
    let mut ledger = Ledger::default();
    let mut run = Run::default();

    // Setup: the demo CA (first start), the TUF repository, an API token, two event devices,
    // and one release published without a kill to time `release publish`.
    let mut srv = h.start_server().unwrap();
    h.root_pem = h
        .cli(&["ca", "show", "root", "--pem"])
        .stdout
        .into_iter()
        .collect();
    std::fs::write(dir.join("root.pem"), &h.root_pem).unwrap();
    h.cli_json(&["tuf", "init"]);
    h.api = h.cli_json(&[
        "apitoken", "create", "--name", "crash", "--role", "operator",
    ])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    {
        let store = h.open_store().unwrap();
        let devs: Vec<String> = EVENT_DEVICES.iter().map(|d| d.to_string()).collect();
        let toks = h.tokens(&store, &devs);
        let est = h.est(&srv);
        for (i, (d, t)) in devs.iter().zip(toks).enumerate() {
            let (key, csr) = csr();
            let der =
                h.rt.block_on(est.simpleenroll(None, &csr, &DeviceSerial::parse(d).unwrap(), &t))
                    .unwrap()
                    .remove(0);
            std::fs::write(
                dir.join(format!("ev{i}.pem")),
                pem::encode(&pem::Pem::new("CERTIFICATE", der)),
            )
            .unwrap();
            std::fs::write(dir.join(format!("ev{i}.key")), key.serialize_pem()).unwrap();
        }
        h.rt.block_on(store.pool().close());
    }
    let mut publish_ms = 0u64;
    for (k, v) in ["1.0.0", "1.0.1"].iter().enumerate() {
        let img = dir.join(format!("setup-{k}.bin"));
        std::fs::write(&img, rng.bytes(4096)).unwrap();
        let t = Instant::now();
        let rec = h.cli_json(
            &publish_args(v, 1, &img, &None)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        publish_ms = t.elapsed().as_millis() as u64;
        ledger.releases.push(rec);
    }
    eprintln!("setup: `release publish` takes {publish_ms} ms");
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();

    let files = dir.join("ops");
    std::fs::create_dir_all(&files).unwrap();
    for iter in 0..n_iter {
        let it_started = Instant::now();
        let Plan {
            kinds,
            mut ops,
            lanes,
            issue_devices,
            kill_ms,
        } = plan(iter, &mut rng, &mut ledger, &files, publish_ms);

        // Tokens for this iteration's enrollments, made while no server runs.
        let store = match h.open_store() {
            Ok(s) => s,
            Err(e) => {
                run.fail(iter, seed, e);
                break;
            }
        };
        let mut toks = h.tokens(&store, &issue_devices).into_iter();
        for op in &mut ops {
            if let Spec::Issue { token, .. } = &mut op.spec {
                *token = toks.next().unwrap();
            }
        }
        // The restarted server serves a CRL listing every revocation stored (some made by a
        // process killed before it reissued the CRL).
        let revoked_now: HashSet<String> = h.rt.block_on(async {
            sqlx::query_scalar::<_, String>(
                "SELECT serial FROM certs WHERE issuer = 'issuing' AND revoked_at IS NOT NULL",
            )
            .fetch_all(store.pool())
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.to_lowercase())
            .collect()
        });
        h.rt.block_on(store.pool().close());
        drop(store);
        let mut srv = match h.start_server() {
            Ok(s) => s,
            Err(e) => {
                run.fail(iter, seed, e);
                break;
            }
        };
        if let Err(e) = check_crl(&h, &srv.addrs, &revoked_now) {
            run.fail(iter, seed, e);
        }
        run.crl_checks += 1;
        // A server that has been up a while has verified the API token already (Argon2id,
        // then cached): warm it so the API writes, not the hashing, fill the window.
        if ops
            .iter()
            .any(|o| o.via == Via::Server && o.kind != Kind::Issue && o.kind != Kind::Events)
        {
            let (b, c) = curl_in(
                &h.dir,
                &[
                    "--cacert",
                    "root.pem",
                    "-H",
                    &format!("Authorization: Bearer {}", h.api),
                    &format!("https://{}/api/v1/firmware", srv.addrs.https),
                ],
            );
            if c != "200" {
                run.fail(iter, seed, format!("API warm-up: HTTP {c}: {b}"));
            }
        }
        let est = h.est(&srv);

        // The burst, and the kill.
        let killer = Mutex::new(Killer::default());
        let t0 = Instant::now();
        let kill_at = t0 + Duration::from_millis(kill_ms);
        let results: Vec<(Instant, Done)> = std::thread::scope(|sc| {
            let mut handles = Vec::new();
            for (lane, start_ms) in lanes.iter().enumerate() {
                let (h, srv, est, killer, ops) = (&h, &srv.addrs, &est, &killer, &ops);
                handles.push(sc.spawn(move || {
                    let at = t0 + Duration::from_millis(*start_ms);
                    std::thread::sleep(at.saturating_duration_since(Instant::now()));
                    let mut out = Vec::new();
                    let mut stop = false;
                    for (idx, op) in ops.iter().enumerate().filter(|(_, o)| o.lane == lane) {
                        let started = Instant::now();
                        let outcome = if stop || killer.lock().unwrap().killed {
                            Outcome::NotStarted
                        } else {
                            run_op(h, srv, est, killer, idx, op)
                        };
                        stop |= !matches!(outcome, Outcome::Acked(..));
                        let finished = Instant::now();
                        out.push((idx, started, Done { outcome, finished }));
                    }
                    out
                }));
            }
            std::thread::sleep(kill_at.saturating_duration_since(Instant::now()));
            // SIGKILL: no shutdown path runs in the server or in the CLI writers.
            srv.child.kill().unwrap();
            {
                let mut k = killer.lock().unwrap();
                k.killed = true;
                for (_, c) in k.children.iter_mut() {
                    let _ = c.kill();
                }
            }
            let mut all: Vec<Option<(Instant, Done)>> = ops.iter().map(|_| None).collect();
            for h in handles {
                for (idx, started, done) in h.join().unwrap() {
                    all[idx] = Some((started, done));
                }
            }
            all.into_iter().map(Option::unwrap).collect()
        });
        let _ = srv.child.wait();
        let killed_at = kill_at;

        // Checks.
        let before = run.failures.len();
        let acked_before = run.acked_checked;
        let audit = h.cli(&["--json", "audit", "verify"]);
        if !audit.status.success() {
            run.fail(
                iter,
                seed,
                format!(
                    "`medsec audit verify` exits {:?}: {}{}",
                    audit.status.code(),
                    String::from_utf8_lossy(&audit.stdout),
                    String::from_utf8_lossy(&audit.stderr)
                ),
            );
        }
        let store = match h.open_store() {
            Ok(s) => s,
            Err(e) => {
                run.fail(iter, seed, e);
                break;
            }
        };
        let mut interrupted_kinds = HashSet::new();
        let mut reruns = Vec::new();
        for (op, (started, done)) in ops.iter().zip(&results) {
            // Sent before the kill (a request sent after it found no server).
            let sent = !matches!(done.outcome, Outcome::NotStarted) && *started < killed_at;
            let acked = match &done.outcome {
                Outcome::Acked(v, der) => Some((v.clone(), der.clone())),
                Outcome::Refused(why) => {
                    run.fail(iter, seed, format!("{:?} refused: {why}", op.kind));
                    None
                }
                Outcome::Lost(why) if done.finished < killed_at => {
                    run.fail(
                        iter,
                        seed,
                        format!("{:?} unanswered before the kill: {why}", op.kind),
                    );
                    None
                }
                Outcome::Lost(_) | Outcome::NotStarted => None,
            };
            if verbose {
                let what = match &done.outcome {
                    Outcome::Acked(..) => "acknowledged".to_owned(),
                    Outcome::Lost(w) => format!("lost: {}", w.lines().next().unwrap_or("")),
                    Outcome::Refused(w) => format!("refused: {w}"),
                    Outcome::NotStarted => "not started".to_owned(),
                };
                eprintln!(
                    "  {:?} via {:?} lane {}: sent at {} ms, {} ms, {what}",
                    op.kind,
                    op.via,
                    op.lane,
                    started.duration_since(t0).as_millis(),
                    done.finished.duration_since(*started).as_millis()
                );
            }
            let r = h.rt.block_on(check_op(
                &store,
                op,
                acked.as_ref(),
                &mut ledger,
                &mut reruns,
            ));
            let t = run.tally.entry(op.kind).or_default();
            t.ops += 1;
            match op.via {
                Via::Server => t.via_server += 1,
                Via::Cli => t.via_cli += 1,
            }
            if acked.is_some() {
                t.acked += 1;
            } else if !sent {
                t.not_started += 1;
            }
            match r {
                Ok(committed) => {
                    if acked.is_some() {
                        run.acked_checked += 1;
                    } else if sent {
                        interrupted_kinds.insert(op.kind);
                        if committed {
                            t.interrupted_committed += 1;
                        } else {
                            t.interrupted_absent += 1;
                        }
                    }
                }
                Err(e) => run.fail(iter, seed, format!("{:?}: {e}", op.kind)),
            }
        }
        for k in interrupted_kinds {
            run.tally.get_mut(&k).unwrap().kills += 1;
        }
        if let Err(e) = h.rt.block_on(check_releases(&h, &store, &ledger, false)) {
            run.fail(iter, seed, e);
        }
        if let Err(e) = h.rt.block_on(check_sboms(&store, &ledger)) {
            run.fail(iter, seed, e);
        }
        h.rt.block_on(store.pool().close());
        drop(store);
        // A release the TUF repository holds but the database does not: the publish was
        // killed between the two; the same command again completes it.
        let signed = match tuf_targets(&h) {
            Ok(t) => t,
            Err(e) => {
                run.fail(iter, seed, e);
                HashSet::new()
            }
        };
        for op in reruns {
            let Spec::Release {
                version,
                sv,
                image,
                sbom,
                ..
            } = &op.spec
            else {
                continue;
            };
            if !signed.contains(&format!("{RELEASE_MODEL}/{RELEASE_MODEL}-{version}.bin")) {
                continue;
            }
            let args = publish_args(version, *sv, image, sbom);
            let mut a = vec!["--json"];
            a.extend(args.iter().map(String::as_str));
            let o = h.cli(&a);
            if !o.status.success() {
                run.fail(
                    iter,
                    seed,
                    format!(
                        "re-running the interrupted publish of {version} fails: {}",
                        String::from_utf8_lossy(&o.stderr)
                    ),
                );
                continue;
            }
            run.tally
                .get_mut(&Kind::Release)
                .unwrap()
                .completed_by_rerun += 1;
            ledger
                .releases
                .push(serde_json::from_slice(&o.stdout).unwrap());
        }
        if let Ok(store) = h.open_store() {
            if let Err(e) = h.rt.block_on(check_releases(&h, &store, &ledger, true)) {
                run.fail(iter, seed, format!("after re-runs: {e}"));
            }
            h.rt.block_on(store.pool().close());
        }
        run.iterations += 1;
        eprintln!(
            "iteration {iter}: {} ops ({}), kill at {kill_ms} ms, {} acknowledged checked, {} ms{}",
            ops.len(),
            kinds
                .iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(","),
            run.acked_checked - acked_before,
            it_started.elapsed().as_millis(),
            if run.failures.len() > before {
                "  FAILED"
            } else {
                ""
            }
        );
        if run.failures.len() > 20 {
            break;
        }
    }

    // Everything acknowledged over the whole run is still there.
    let server_after = h.start_server();
    match server_after {
        Ok(mut s) => {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
        Err(e) => run.fail(n_iter, seed, format!("final start: {e}")),
    }
    let audit = h.cli(&["--json", "audit", "verify"]);
    if !audit.status.success() {
        run.fail(n_iter, seed, "final `medsec audit verify` fails".into());
    }
    match h.open_store() {
        Ok(store) => {
            match h.rt.block_on(final_check(&h, &store, &ledger)) {
                Ok(n) => run.final_checked = n,
                Err(e) => run.fail(n_iter, seed, format!("final check: {e}")),
            }
            h.rt.block_on(store.pool().close());
        }
        Err(e) => run.fail(n_iter, seed, e),
    }

    let summary = summary(&run, seed, &h.bin, wall.elapsed());
    println!("{summary}");
    if let Ok(p) = std::env::var("MEDSEC_CRASH_SUMMARY") {
        std::fs::write(p, &summary).unwrap();
    }
    if std::env::var_os("MEDSEC_CRASH_KEEP").is_some() {
        eprintln!("data kept in {}", tmp.keep().display());
    }
    assert!(
        run.failures.is_empty(),
        "{} failures (MEDSEC_CRASH_SEED={seed}):\n{}",
        run.failures.len(),
        run.failures.join("\n")
    );
    for k in KINDS {
        let t = run.tally.get(&k).cloned().unwrap_or_default();
        let sent = t.acked + t.interrupted_committed + t.interrupted_absent;
        assert!(
            n_iter < 30 || (sent >= 3 && t.kills >= 3),
            "{k:?}: {sent} operations sent and {} kills landing in one in {n_iter} iterations",
            t.kills
        );
    }
}

/// One iteration's operations, in lanes, and when the kill comes.
struct Plan {
    kinds: Vec<Kind>,
    ops: Vec<Op>,
    /// Each lane's start, in ms after the burst's start.
    lanes: Vec<u64>,
    /// The devices the issuance operations enroll (tokens are made for them).
    issue_devices: Vec<String>,
    kill_ms: u64,
}

fn plan(iter: usize, rng: &mut Rng, ledger: &mut Ledger, files: &Path, publish_ms: u64) -> Plan {
    // The operations of this iteration: every kind in turn for sure, others by chance.
    let mut kinds: Vec<Kind> = KINDS
        .iter()
        .copied()
        .filter(|k| *k == KINDS[iter % KINDS.len()] || rng.chance(1, 2))
        .collect();
    if ledger.revocable.is_empty() {
        kinds.retain(|k| *k != Kind::Revoke);
    }
    let has_release = kinds.contains(&Kind::Release);
    // With a release in the mix the server's burst starts somewhere in the publish, so
    // kills land in every phase of it as well as in the server's writes.
    let offset = if has_release {
        rng.range(0, publish_ms * 2)
    } else {
        0
    };
    // Each kind gets one or two lanes: a thread sending its operations back to back from
    // a random start until the kill, so that one is usually in flight when it lands.
    let mut ops: Vec<Op> = Vec::new();
    let mut lanes: Vec<u64> = Vec::new();
    let mut issue_devices = Vec::new();
    let mut next_k: HashMap<Kind, usize> = HashMap::new();
    for kind in &kinds {
        let n_lanes = if *kind == Kind::Release {
            1
        } else {
            rng.range(1, 2)
        };
        for _ in 0..n_lanes {
            let lane = lanes.len();
            lanes.push(if *kind == Kind::Release {
                0
            } else {
                offset + rng.range(0, LANE_SPREAD_MS)
            });
            let len = match kind {
                Kind::Issue => 8,
                Kind::Events => 6,
                Kind::Revoke => 4,
                Kind::Release => rng.range(1, 2),
                Kind::Sbom | Kind::Advisory => 3,
            };
            // A lane goes through the server or through the CLI.
            let cli = rng.chance(1, 3);
            for _ in 0..len {
                let k = {
                    let n = next_k.entry(*kind).or_default();
                    *n += 1;
                    *n - 1
                };
                let tag = format!("{iter}-{k}");
                let (via, spec) = match kind {
                    Kind::Issue => {
                        let device = format!("CC-{iter:05}-{k}");
                        issue_devices.push(device.clone());
                        (
                            Via::Server,
                            Spec::Issue {
                                device,
                                token: String::new(),
                                csr: csr().1,
                            },
                        )
                    }
                    Kind::Revoke => {
                        if ledger.revocable.is_empty() {
                            continue;
                        }
                        let i = (rng.next() % ledger.revocable.len() as u64) as usize;
                        let serial = ledger.revocable.swap_remove(i);
                        let reason = *rng.pick(&[
                            "keyCompromise",
                            "superseded",
                            "cessationOfOperation",
                            "affiliationChanged",
                            "unspecified",
                        ]);
                        (
                            if cli { Via::Cli } else { Via::Server },
                            Spec::Revoke { serial, reason },
                        )
                    }
                    Kind::Sbom => {
                        let version = format!("9.{iter}.{k}");
                        let n = rng.range(20, 800) as usize;
                        let bytes = cyclonedx(&format!("cc{tag}"), n);
                        let file = files.join(format!("sbom-{tag}.json"));
                        std::fs::write(&file, &bytes).unwrap();
                        let sha256 = sha256_hex(&bytes);
                        ledger
                            .sbom_expected
                            .insert((SBOM_MODEL.into(), version.clone()), (sha256.clone(), n));
                        (
                            if cli { Via::Cli } else { Via::Server },
                            Spec::Sbom {
                                version,
                                file,
                                sha256,
                                components: n,
                            },
                        )
                    }
                    Kind::Advisory => {
                        let prefix = format!("MEDSEC-CC-{tag}-");
                        let (zipped, records) = osv_zip(&prefix, rng.range(5, 200) as usize);
                        let file = files.join(format!("osv-{tag}.zip"));
                        std::fs::write(&file, zipped).unwrap();
                        (
                            if cli { Via::Cli } else { Via::Server },
                            Spec::Advisory {
                                file,
                                prefix,
                                records,
                            },
                        )
                    }
                    Kind::Release => {
                        let version = format!("2.{iter}.{k}");
                        let len = rng.range(1024, 256 * 1024) as usize;
                        let bytes = rng.bytes(len);
                        let image = files.join(format!("image-{tag}.bin"));
                        std::fs::write(&image, &bytes).unwrap();
                        let sbom = rng.chance(1, 2).then(|| {
                            let n = rng.range(10, 300) as usize;
                            let b = cyclonedx(&format!("rel{tag}"), n);
                            let f = files.join(format!("release-sbom-{tag}.json"));
                            std::fs::write(&f, &b).unwrap();
                            let sha = sha256_hex(&b);
                            ledger
                                .sbom_expected
                                .insert((RELEASE_MODEL.into(), version.clone()), (sha.clone(), n));
                            (f, sha, n)
                        });
                        (
                            Via::Cli,
                            Spec::Release {
                                version,
                                sv: iter as u64 + 2,
                                image,
                                sha256: sha256_hex(&bytes),
                                length: bytes.len() as u64,
                                sbom,
                            },
                        )
                    }
                    Kind::Events => {
                        let prefix = format!("cc-{tag}-");
                        let count = rng.range(1, 100) as usize;
                        let file = files.join(format!("events-{tag}.json"));
                        std::fs::write(&file, events_batch(rng, &prefix, count)).unwrap();
                        (
                            Via::Server,
                            Spec::Events {
                                device: (rng.next() % 2) as usize,
                                file,
                                prefix,
                                count,
                            },
                        )
                    }
                };
                ops.push(Op {
                    kind: *kind,
                    via,
                    spec,
                    lane,
                });
            }
        }
    }
    let kill_ms = offset + rng.range(0, WINDOW_MS);
    Plan {
        kinds,
        ops,
        lanes,
        issue_devices,
        kill_ms,
    }
}

fn check_crl(h: &Harness, srv: &Addrs, revoked: &HashSet<String>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let o = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-o",
                "issuing.crl",
                "-w",
                "%{http_code}",
            ])
            .arg(format!("http://{}/crl/issuing.crl", srv.http))
            .current_dir(&h.dir)
            .output()
            .unwrap();
        let code = String::from_utf8_lossy(&o.stdout).into_owned();
        let missing: Vec<String> = if code == "200" {
            let der = std::fs::read(h.dir.join("issuing.crl")).unwrap();
            let (_, crl) = x509_parser::parse_x509_crl(&der)
                .map_err(|e| format!("the served CRL does not parse: {e}"))?;
            let listed: HashSet<String> = crl
                .iter_revoked_certificates()
                .map(|r| hex::encode(r.raw_serial()))
                .collect();
            revoked
                .iter()
                .filter(|s| !listed.contains(*s))
                .cloned()
                .collect()
        } else {
            vec![format!("(HTTP {code})")]
        };
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "5 s after the restart the CRL still lacks {} stored revocation(s): {missing:?}",
                missing.len()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Checks one operation against the store; returns whether its write is there.
async fn check_op(
    store: &SqliteStore,
    op: &Op,
    acked: Option<&(Value, Option<Vec<u8>>)>,
    ledger: &mut Ledger,
    reruns: &mut Vec<OpRef>,
) -> Result<bool, String> {
    let db = store.pool();
    let e = |e: sqlx::Error| e.to_string();
    match &op.spec {
        Spec::Issue { device, .. } => {
            let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
                "SELECT serial, der FROM certs WHERE device_model = ? AND device_serial = ?",
            )
            .bind(RELEASE_MODEL)
            .bind(device)
            .fetch_all(db)
            .await
            .map_err(e)?;
            let tok: (Option<i64>, Option<String>) = sqlx::query_as(
                "SELECT used_at, used_by_cert FROM enrollment_tokens WHERE device_serial = ?",
            )
            .bind(device)
            .fetch_one(db)
            .await
            .map_err(e)?;
            if rows.len() > 1 {
                return Err(format!("{device} has {} certificates", rows.len()));
            }
            match (rows.first(), &tok.1) {
                (Some((s, _)), Some(u)) if s.eq_ignore_ascii_case(u) && tok.0.is_some() => {}
                (None, None) if tok.0.is_none() => {}
                _ => {
                    return Err(format!(
                        "{device}: certificate {:?} but token used by {:?}: the token and the certificate are not one write",
                        rows.first().map(|r| &r.0),
                        tok
                    ));
                }
            }
            if let Some((_, Some(der))) = acked {
                let serial = serial_of(der);
                let Some((s, stored)) = rows.first() else {
                    return Err(format!(
                        "{device}: acknowledged certificate {serial} missing"
                    ));
                };
                if !s.eq_ignore_ascii_case(&serial) || stored != der {
                    return Err(format!(
                        "{device}: acknowledged certificate {serial} stored differently"
                    ));
                }
                if !ledger.serials.insert(serial.clone()) {
                    return Err(format!("serial {serial} acknowledged twice"));
                }
                ledger.certs.push((serial.clone(), der.clone()));
                ledger.revocable.push(serial);
            }
            Ok(!rows.is_empty())
        }
        Spec::Revoke { serial, reason } => {
            let r: Option<(Option<String>, Option<i64>)> =
                sqlx::query_as("SELECT revoked_reason, revoked_at FROM certs WHERE serial = ?")
                    .bind(serial)
                    .fetch_optional(db)
                    .await
                    .map_err(e)?;
            let Some((stored, at)) = r else {
                return Err(format!("certificate {serial} vanished"));
            };
            let revoked = match (&stored, at) {
                (Some(s), Some(_)) if s == reason => true,
                (None, None) => false,
                other => {
                    return Err(format!("{serial} revoked as {reason}, stored as {other:?}"));
                }
            };
            if acked.is_some() {
                if !revoked {
                    return Err(format!("acknowledged revocation of {serial} missing"));
                }
                ledger.revoked.push((serial.clone(), reason.to_string()));
            }
            Ok(revoked)
        }
        Spec::Sbom {
            version,
            sha256,
            components,
            ..
        } => {
            let present = sbom_state(store, SBOM_MODEL, version).await?;
            if let Some((sha, n)) = &present
                && (sha != sha256 || n != components)
            {
                return Err(format!(
                    "SBOM {SBOM_MODEL}@{version}: stored {sha} with {n} components, sent {sha256} with {components}"
                ));
            }
            if let Some((v, _)) = acked {
                if present.is_none() {
                    return Err(format!("acknowledged SBOM {SBOM_MODEL}@{version} missing"));
                }
                if v["sha256"] != json!(sha256) || v["components"] != json!(components) {
                    return Err(format!("SBOM {version} acknowledged as {v}"));
                }
                ledger.sboms.push((
                    SBOM_MODEL.into(),
                    version.clone(),
                    sha256.clone(),
                    *components,
                ));
            }
            Ok(present.is_some())
        }
        Spec::Advisory {
            prefix, records, ..
        } => {
            let stored = advisories_with(store, prefix).await?;
            if !stored.is_empty() && &stored != records {
                return Err(format!(
                    "advisory import {prefix}*: {} of {} records stored (or different bytes)",
                    stored.len(),
                    records.len()
                ));
            }
            if let Some((v, _)) = acked {
                if stored.is_empty() {
                    return Err(format!("acknowledged advisory import {prefix}* missing"));
                }
                let stats = if v.get("osv").is_some() { &v["osv"] } else { v };
                if stats["new"] != json!(records.len()) {
                    return Err(format!("advisory import {prefix}* acknowledged as {v}"));
                }
                ledger.advisories.push((prefix.clone(), records.clone()));
            }
            Ok(!stored.is_empty())
        }
        Spec::Events {
            device,
            prefix,
            count,
            ..
        } => {
            let urn = format!(
                "urn:medsec:device:{RELEASE_MODEL}:{}",
                EVENT_DEVICES[*device]
            );
            let n = events_with(store, &urn, prefix).await?;
            if n != 0 && n != *count {
                return Err(format!(
                    "event batch {prefix}*: {n} of {count} events stored"
                ));
            }
            if let Some((v, _)) = acked {
                if n != *count || v["accepted"] != json!(count) {
                    return Err(format!(
                        "acknowledged event batch {prefix}* ({v}): {n} of {count} stored"
                    ));
                }
                ledger.events.push((urn, prefix.clone(), *count));
            }
            Ok(n == *count)
        }
        Spec::Release {
            version,
            sv,
            sha256,
            length,
            ..
        } => {
            let rec = release_row(store, version).await?;
            if let Some(r) = &rec
                && (r["sha256"] != json!(sha256)
                    || r["length"] != json!(length)
                    || r["security_version"] != json!(sv))
            {
                return Err(format!("release {version} recorded as {r}"));
            }
            if let Some((v, _)) = acked {
                let Some(r) = &rec else {
                    return Err(format!("acknowledged release {version} not recorded"));
                };
                for f in [
                    "target",
                    "sha256",
                    "length",
                    "security_version",
                    "hardware_id",
                ] {
                    if v[f] != r[f] {
                        return Err(format!("release {version} acknowledged as {v}, stored {r}"));
                    }
                }
                ledger.releases.push(v.clone());
            } else if rec.is_none() {
                reruns.push(OpRef::from(op));
            }
            Ok(rec.is_some())
        }
    }
}

/// What a re-run needs of a release operation (the TUF repository decides whether it is due).
struct OpRef {
    spec: Spec,
}

impl From<&Op> for OpRef {
    fn from(op: &Op) -> Self {
        let Spec::Release {
            version,
            sv,
            image,
            sha256,
            length,
            sbom,
        } = &op.spec
        else {
            unreachable!()
        };
        OpRef {
            spec: Spec::Release {
                version: version.clone(),
                sv: *sv,
                image: image.clone(),
                sha256: sha256.clone(),
                length: *length,
                sbom: sbom.clone(),
            },
        }
    }
}

async fn sbom_state(
    store: &SqliteStore,
    model: &str,
    version: &str,
) -> Result<Option<(String, usize)>, String> {
    let db = store.pool();
    let sha: Option<String> =
        sqlx::query_scalar("SELECT sha256 FROM sboms WHERE model = ? AND version = ?")
            .bind(model)
            .bind(version)
            .fetch_optional(db)
            .await
            .map_err(|e| e.to_string())?;
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sbom_components WHERE model = ? AND version = ?")
            .bind(model)
            .bind(version)
            .fetch_one(db)
            .await
            .map_err(|e| e.to_string())?;
    match sha {
        Some(s) => Ok(Some((s, n as usize))),
        None if n == 0 => Ok(None),
        None => Err(format!(
            "{model}@{version}: {n} components without their SBOM"
        )),
    }
}

async fn advisories_with(
    store: &SqliteStore,
    prefix: &str,
) -> Result<BTreeMap<String, String>, String> {
    let rows: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT id, raw FROM advisories WHERE id LIKE ? || '%'")
            .bind(prefix)
            .fetch_all(store.pool())
            .await
            .map_err(|e| e.to_string())?;
    Ok(rows
        .into_iter()
        .map(|(id, raw)| (id, sha256_hex(&raw)))
        .collect())
}

async fn events_with(store: &SqliteStore, urn: &str, prefix: &str) -> Result<usize, String> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pm_events WHERE device = ? AND event_id LIKE ? || '%'",
    )
    .bind(urn)
    .bind(prefix)
    .fetch_one(store.pool())
    .await
    .map_err(|e| e.to_string())?;
    Ok(n as usize)
}

fn release_json(r: &medsec_updates::ReleaseRecord) -> Value {
    json!({"model": r.model, "version": r.version, "target": r.target, "length": r.length,
           "sha256": r.sha256, "security_version": r.security_version,
           "hardware_id": r.hardware_id})
}

async fn release_row(store: &SqliteStore, version: &str) -> Result<Option<Value>, String> {
    use medsec_updates::UpdateStore;
    Ok(store
        .get_release(RELEASE_MODEL, version)
        .await
        .map_err(|e| e.to_string())?
        .map(|r| release_json(&r)))
}

fn open_repo(h: &Harness) -> Result<medsec_updates::repo::Repository, String> {
    let keys_dir = h.dir.join("unused-keys");
    let pass = medsec_keys::Passphrase::new(b"unused by reading".to_vec()).unwrap();
    let keys = Arc::new(medsec_keys::EncryptedFileKeySource::new(keys_dir, pass));
    medsec_updates::repo::Repository::open(h.data.join("tuf"), keys)
        .map_err(|e| format!("the TUF repository does not open: {e}"))
}

/// The targets of the release model in the TUF repository.
fn tuf_targets(h: &Harness) -> Result<HashSet<String>, String> {
    Ok(open_repo(h)?
        .releases(&DeviceModel::parse(RELEASE_MODEL).unwrap())
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|p| p.target_name)
        .collect())
}

/// Every release the database records is in the TUF repository (which opens, so every role's
/// signatures verify) with the same target, length, hash and security version, its image is on
/// disk with that hash, and its SBOM (named in the target's custom metadata) is stored whole.
/// With `exact`, the repository holds nothing the database does not record.
async fn check_releases(
    h: &Harness,
    store: &SqliteStore,
    ledger: &Ledger,
    exact: bool,
) -> Result<(), String> {
    use medsec_updates::UpdateStore;
    let recorded = store
        .list_releases(Some(RELEASE_MODEL))
        .await
        .map_err(|e| e.to_string())?;
    let tuf = h.data.join("tuf");
    let repo = open_repo(h)?;
    let published = repo
        .releases(&DeviceModel::parse(RELEASE_MODEL).unwrap())
        .map_err(|e| e.to_string())?;
    drop(repo);
    let by_target: HashMap<&str, &medsec_updates::repo::PublishedRelease> = published
        .iter()
        .map(|p| (p.target_name.as_str(), p))
        .collect();
    for r in &recorded {
        let Some(p) = by_target.get(r.target.as_str()) else {
            return Err(format!(
                "release {} is recorded but not in the TUF repository",
                r.version
            ));
        };
        if p.sha256 != r.sha256
            || p.length != r.length
            || p.custom.security_version != r.security_version
        {
            return Err(format!(
                "release {}: recorded {} / TUF {:?}",
                r.version,
                release_json(r),
                p
            ));
        }
        check_target(&tuf, p)?;
        if let Some(sha) = &p.custom.sbom_sha256 {
            match sbom_state(store, RELEASE_MODEL, &r.version).await? {
                Some((s, n)) => {
                    let want = ledger
                        .sbom_expected
                        .get(&(RELEASE_MODEL.to_owned(), r.version.clone()))
                        .map(|x| x.1);
                    if &s != sha || want.is_some_and(|w| w != n) {
                        return Err(format!(
                            "release {}: SBOM stored {s} with {n} components, TUF names {sha}, sent {want:?}",
                            r.version
                        ));
                    }
                }
                None => {
                    return Err(format!(
                        "release {} is recorded but its SBOM {sha} is not stored (half-present)",
                        r.version
                    ));
                }
            }
        }
    }
    for p in &published {
        check_target(&tuf, p)?;
    }
    if exact && published.len() != recorded.len() {
        let rec: HashSet<&str> = recorded.iter().map(|r| r.target.as_str()).collect();
        let extra: Vec<&str> = published
            .iter()
            .map(|p| p.target_name.as_str())
            .filter(|t| !rec.contains(t))
            .collect();
        return Err(format!("TUF targets not recorded as releases: {extra:?}"));
    }
    Ok(())
}

fn check_target(tuf: &Path, p: &medsec_updates::repo::PublishedRelease) -> Result<(), String> {
    let bytes = std::fs::read(tuf.join(&p.path))
        .map_err(|e| format!("target {} named by the metadata: {e}", p.target_name))?;
    if sha256_hex(&bytes) != p.sha256 || bytes.len() as u64 != p.length {
        return Err(format!(
            "target {} on disk differs from its metadata",
            p.target_name
        ));
    }
    Ok(())
}

/// Every stored SBOM of the harness's models has exactly the components that were sent.
async fn check_sboms(store: &SqliteStore, ledger: &Ledger) -> Result<(), String> {
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT s.model, s.version, s.sha256,
                (SELECT count(*) FROM sbom_components c WHERE c.model = s.model AND c.version = s.version)
         FROM sboms s",
    )
    .fetch_all(store.pool())
    .await
    .map_err(|e| e.to_string())?;
    for (m, v, sha, n) in rows {
        if let Some((want_sha, want_n)) = ledger.sbom_expected.get(&(m.clone(), v.clone()))
            && (&sha != want_sha || n as usize != *want_n)
        {
            return Err(format!(
                "SBOM {m}@{v}: {n} components stored ({sha}), {want_n} sent ({want_sha})"
            ));
        }
    }
    Ok(())
}

/// Re-checks every acknowledged write of the run; returns how many were checked.
async fn final_check(h: &Harness, store: &SqliteStore, ledger: &Ledger) -> Result<usize, String> {
    let db = store.pool();
    let e = |e: sqlx::Error| e.to_string();
    let certs: HashMap<String, (Vec<u8>, Option<String>)> =
        sqlx::query_as::<_, (String, Vec<u8>, Option<String>)>(
            "SELECT serial, der, revoked_reason FROM certs",
        )
        .fetch_all(db)
        .await
        .map_err(e)?
        .into_iter()
        .map(|(s, d, r)| (s.to_lowercase(), (d, r)))
        .collect();
    let dup: Vec<(String, i64)> = sqlx::query_as(
        "SELECT lower(serial), count(*) FROM certs GROUP BY lower(serial) HAVING count(*) > 1",
    )
    .fetch_all(db)
    .await
    .map_err(e)?;
    if !dup.is_empty() {
        return Err(format!("duplicated certificate serials: {dup:?}"));
    }
    let mut n = 0;
    for (serial, der) in &ledger.certs {
        match certs.get(serial) {
            Some((d, _)) if d == der => n += 1,
            _ => return Err(format!("acknowledged certificate {serial} lost")),
        }
    }
    for (serial, reason) in &ledger.revoked {
        match certs.get(&serial.to_lowercase()) {
            Some((_, Some(r))) if r == reason => n += 1,
            other => {
                return Err(format!(
                    "acknowledged revocation of {serial} lost: {:?}",
                    other.map(|o| &o.1)
                ));
            }
        }
    }
    for (m, v, sha, comps) in &ledger.sboms {
        match sbom_state(store, m, v).await? {
            Some((s, c)) if &s == sha && c == *comps => n += 1,
            other => return Err(format!("acknowledged SBOM {m}@{v} lost: {other:?}")),
        }
    }
    for (prefix, records) in &ledger.advisories {
        if &advisories_with(store, prefix).await? != records {
            return Err(format!("acknowledged advisories {prefix}* lost"));
        }
        n += 1;
    }
    for (urn, prefix, count) in &ledger.events {
        if events_with(store, urn, prefix).await? != *count {
            return Err(format!("acknowledged events {prefix}* lost"));
        }
        n += 1;
    }
    for r in &ledger.releases {
        let v = r["version"].as_str().unwrap();
        match release_row(store, v).await? {
            Some(s) if s["sha256"] == r["sha256"] && s["target"] == r["target"] => n += 1,
            other => return Err(format!("acknowledged release {v} lost: {other:?}")),
        }
    }
    check_releases(h, store, ledger, true).await?;
    check_sboms(store, ledger).await?;
    Ok(n)
}

fn summary(run: &Run, seed: u64, bin: &Path, wall: Duration) -> String {
    let mut s = String::new();
    let secs = wall.as_secs_f64();
    s.push_str(&format!(
        "- binary: `{}`, seed {seed}\n- iterations (one SIGKILL each): {}, wall time {:.0} s ({:.2} s per iteration)\n\
         - acknowledged writes checked right after their kill: {}; re-checked at the end: {}\n\
         - CRL served after each restart checked against the stored revocations: {}\n\
         - failures: {}\n\n",
        bin.display(),
        run.iterations,
        secs,
        secs / run.iterations.max(1) as f64,
        run.acked_checked,
        run.final_checked,
        run.crl_checks,
        run.failures.len()
    ));
    s.push_str("| operation (killed process) | ops | via serve / CLI | acknowledged | interrupted: committed / absent | not started | kills landing in it |\n");
    s.push_str("|---|---|---|---|---|---|---|\n");
    for k in KINDS {
        let t = run.tally.get(&k).cloned().unwrap_or_default();
        let rerun = if k == Kind::Release {
            format!(" ({} completed by re-running)", t.completed_by_rerun)
        } else {
            String::new()
        };
        s.push_str(&format!(
            "| {} | {} | {} / {} | {} | {} / {}{rerun} | {} | {} |\n",
            k.name(),
            t.ops,
            t.via_server,
            t.via_cli,
            t.acked,
            t.interrupted_committed,
            t.interrupted_absent,
            t.not_started,
            t.kills
        ));
    }
    for f in run.failures.iter().take(20) {
        s.push_str(&format!("\n- FAILURE: {f}"));
    }
    s
}

/// The director's key is created on first use and its reference recorded next to it; a
/// process killed between the two left a key without a reference, which used to stop every
/// later `serve` and `release publish` (the key source never overwrites a key). Simulated
/// deterministically: the reference is removed after a first use.
#[test]
fn director_key_without_its_reference_is_taken_up() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let run = || {
        let o = Command::new(
            std::env::var("MEDSEC_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_medsec").into()),
        )
        .arg("--data-dir")
        .arg(&data)
        .args(["director", "key"])
        .env("MEDSEC_KEY_PASSPHRASE", PASSPHRASE)
        .env_remove("MEDSEC_DATA_DIR")
        .env_remove("MEDSEC_CONFIG")
        .env_remove("MEDSEC_DATABASE_URL")
        .output()
        .unwrap();
        assert!(
            o.status.success(),
            "medsec director key: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let first = run();
    std::fs::remove_file(data.join("director.keyref")).unwrap();
    assert_eq!(run(), first, "the key left behind is the director's");
    assert!(data.join("director.keyref").exists());
    assert!(!data.join("director.keyref.tmp").exists());
}
