//! `medsec bench soak`: each server path held at a fixed request rate for minutes against a
//! `medsec serve` child process, with the server's RSS, open descriptors and latency per window.
//!
//! The load is open-loop: requests are scheduled at the rate whatever the answers do, and a
//! request's latency counts from when it was due, so a server that falls behind shows it in p99
//! (and in "late" requests) instead of slowing the clients down with it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context, Result, bail};
use medsec_core::{DeviceSerial, Name};
use medsec_store::Synchronous;
use time::Duration;
use tokio::sync::mpsc;

use crate::bench::{EventDevice, push_event, setup};

/// A server path the soak can hold at a rate.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoakPath {
    /// EST simpleenroll over TLS: a new device key, token and TLS connection per request.
    Est,
    /// OCSP GET on the plain listener over keep-alive connections, many certificates.
    Ocsp,
    /// Device event batches of 100 over mTLS keep-alive connections.
    Events,
    /// TUF repository files (metadata and image) on the plain listener, keep-alive.
    Tuf,
}

impl SoakPath {
    fn label(self) -> &'static str {
        match self {
            SoakPath::Est => "EST simpleenroll",
            SoakPath::Ocsp => "OCSP",
            SoakPath::Events => "event ingest (batches of 100)",
            SoakPath::Tuf => "TUF file serving",
        }
    }
}

/// What one soak run asks for.
pub struct SoakSpec {
    pub seconds: u64,
    pub window: u64,
    /// Requests in flight at most (and client connections).
    pub concurrency: usize,
    /// Requests per second.
    pub rate: u32,
}

/// `medsec serve` as a child process; killed when dropped.
struct ServerProcess {
    child: Child,
    http: std::net::SocketAddr,
    https: std::net::SocketAddr,
    device: std::net::SocketAddr,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    fn start(data: &Path, pass: &Path) -> Result<Self> {
        use std::io::BufRead;
        let exe = std::env::current_exe().context("locating the medsec binary")?;
        let mut child = Command::new(exe)
            .arg("--data-dir")
            .arg(data)
            .arg("--passphrase-file")
            .arg(pass)
            .args(["serve", "--http", "127.0.0.1:0", "--https", "127.0.0.1:0"])
            .args(["--device", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting medsec serve")?;
        let mut line = String::new();
        let out = child.stdout.take().context("server stdout")?;
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .context("reading the server's listening line")?;
        let get = |k: &str| -> Result<std::net::SocketAddr> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{k}=")))
                .with_context(|| format!("no {k}= in the server's first line {line:?}"))?
                .parse()
                .with_context(|| format!("{k}= in {line:?}"))
        };
        let (http, https, device) = (get("http"), get("https"), get("device"));
        let mut s = ServerProcess {
            child,
            http: "127.0.0.1:1".parse()?,
            https: "127.0.0.1:1".parse()?,
            device: "127.0.0.1:1".parse()?,
        };
        (s.http, s.https, s.device) = (http?, https?, device?);
        Ok(s)
    }

    /// (resident set size in KiB, open file descriptors), read from /proc.
    fn sample(&self) -> Option<(u64, usize)> {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
        Some((rss, fds))
    }
}

/// One worker's way of making one request; `i` numbers the requests of the whole run.
enum Client {
    Est {
        client: medsec_agent::EstClient,
        work: Arc<Vec<(DeviceSerial, String, Vec<u8>)>>,
    },
    Plain {
        addr: std::net::SocketAddr,
        sender: Option<hyper::client::conn::http1::SendRequest<axum::body::Body>>,
        paths: Arc<Vec<String>>,
    },
    Events {
        addr: std::net::SocketAddr,
        devices: Vec<EventDevice>,
        next: usize,
        epoch: time::OffsetDateTime,
    },
}

/// Events per batch on the events path (the rated batch size of issue 7).
const EVENT_BATCH: usize = 100;

impl Client {
    async fn request(&mut self, i: usize) -> Result<()> {
        match self {
            Client::Est { client, work } => {
                let (serial, token, csr) = work
                    .get(i)
                    .context("the run outlasted its enrollment tokens")?;
                let certs = client.simpleenroll(None, csr, serial, token).await?;
                if certs.len() != 1 {
                    bail!("enrollment returned {} certificates", certs.len());
                }
                Ok(())
            }
            Client::Plain {
                addr,
                sender,
                paths,
            } => {
                if sender.as_ref().is_none_or(|s| s.is_closed()) {
                    let tcp = tokio::net::TcpStream::connect(*addr).await?;
                    tcp.set_nodelay(true)?;
                    let (s, conn) =
                        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                            .await?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    *sender = Some(s);
                }
                let s = sender.as_mut().context("no connection")?;
                s.ready().await?;
                let path = &paths[i % paths.len()];
                let req = axum::http::Request::get(path.as_str())
                    .header(axum::http::header::HOST, addr.to_string())
                    .body(axum::body::Body::empty())?;
                let resp = s.send_request(req).await?;
                let status = resp.status();
                let body =
                    axum::body::to_bytes(axum::body::Body::new(resp.into_body()), 64 << 20).await?;
                if !status.is_success() {
                    bail!("GET {path}: HTTP {status}");
                }
                // An OCSP answer must be a successful response, not an error status.
                if path.starts_with("/ocsp/") {
                    let hdr = match body.get(1) {
                        Some(l) if l & 0x80 != 0 => 2 + usize::from(l & 0x7f),
                        _ => 2,
                    };
                    if body.get(hdr..hdr + 3) != Some(&[0x0a, 0x01, 0x00]) {
                        bail!("GET {path}: not a successful OCSP response");
                    }
                }
                Ok(())
            }
            Client::Events {
                addr,
                devices,
                next,
                epoch,
            } => {
                let n = devices.len();
                let dev = devices
                    .get_mut(*next % n.max(1))
                    .context("no devices for this worker")?;
                *next += 1;
                let mut body = String::from("[");
                for _ in 0..EVENT_BATCH {
                    let at = *epoch + Duration::seconds(dev.sent as i64 * 3);
                    push_event(&mut body, dev.sent, dev.index as u64 * 7919, 0, at)?;
                    dev.sent += 1;
                }
                body.push(']');
                let mut tally = crate::bench::EventTally::default();
                crate::bench::post_batch(dev, *addr, body, EVENT_BATCH, &mut tally).await
            }
        }
    }
}

/// What the workers saw in one window.
#[derive(Default)]
struct Window {
    latencies_us: Vec<u32>,
    errors: usize,
    first_error: Option<String>,
}

/// One row of the report.
struct Row {
    end_secs: u64,
    requests: usize,
    errors: usize,
    late: usize,
    p50_ms: f64,
    p99_ms: f64,
    rss_kib: u64,
    fds: usize,
}

fn pct_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0
}

/// Prepares the data directory for `path`, starts the server and returns the workers' clients.
async fn prepare(
    path: SoakPath,
    spec: &SoakSpec,
    tmp: &tempfile::TempDir,
) -> Result<(ServerProcess, Vec<Client>)> {
    let (app, profile) = setup(tmp, None).await?;
    let data = tmp.path().join("data");
    let pass = tmp.path().join("passphrase");
    // No per-client EST rate limit: every request comes from 127.0.0.1.
    std::fs::write(
        data.join("medsec.toml"),
        format!(
            "[server]\ndefault_profile = \"{}\"\nest_rate_per_sec = 1e9\nest_rate_burst = 1e9\n",
            profile.name
        ),
    )?;
    let root_der = app.ca.get_ca(&Name::parse("root")?).await?.cert_der;
    let issuing_der = app.ca.get_ca(&profile.issuer).await?.cert_der;
    let c = spec.concurrency.max(1);
    let mut est_work = None;
    let mut ocsp_paths = Vec::new();
    let mut identities = Vec::new();
    match path {
        SoakPath::Est => {
            // One token and key per request of the run (plus slack), made before the clock
            // starts by a second store handle without fsync per commit.
            let n = (spec.rate as u64 * spec.seconds * 21 / 20 + 64) as usize;
            eprintln!("soak est: {n} enrollment tokens and device keys (not timed)...");
            drop(app);
            let fast = crate::open_app(
                &data,
                None,
                Some(pass.clone()),
                Some("bench"),
                false,
                Synchronous::DangerNormal,
                None,
            )
            .await?;
            let csrs = crate::bench::make_csrs(n)?;
            let mut work = Vec::with_capacity(n);
            for (i, csr) in csrs.into_iter().enumerate() {
                let serial = DeviceSerial::parse(&format!("SOAK-{i:08}"))?;
                let (secret, _) = fast
                    .ca
                    .create_enrollment_token(
                        &profile.name,
                        &serial,
                        Duration::hours(2),
                        &fast.actor,
                    )
                    .await?;
                work.push((serial, secret, csr));
            }
            est_work = Some(Arc::new(work));
        }
        SoakPath::Ocsp => {
            // 2,000 certificates, a tenth revoked: requests cycle over all of them, so the
            // responder's cache holds them all after the first pass and refreshes on expiry.
            use x509_parser::prelude::FromDer;
            let (_, issuing) = x509_parser::certificate::X509Certificate::from_der(&issuing_der)
                .map_err(|e| anyhow::anyhow!("issuing CA certificate: {e}"))?;
            let sha1 = |b: &[u8]| {
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, b)
                    .as_ref()
                    .to_vec()
            };
            let name_hash = sha1(issuing.subject().as_raw());
            let key_hash = sha1(&issuing.public_key().subject_public_key.data);
            let csrs = crate::bench::make_csrs(2000)?;
            for (i, csr) in csrs.iter().enumerate() {
                let serial = DeviceSerial::parse(&format!("OCSP-{i:06}"))?;
                let issued = app
                    .ca
                    .issue(&profile.name, &serial, csr, &app.actor)
                    .await?;
                let cert_serial = issued.record.serial.clone();
                if i % 10 == 0 {
                    app.ca
                        .revoke(
                            &cert_serial,
                            medsec_core::RevocationReason::KeyCompromise,
                            None,
                            &app.actor,
                        )
                        .await?;
                }
                let req =
                    crate::bench_pg::ocsp_request(&name_hash, &key_hash, cert_serial.as_bytes());
                use base64::Engine;
                let b64 = base64::engine::general_purpose::STANDARD.encode(req);
                ocsp_paths.push(format!(
                    "/ocsp/{}",
                    b64.replace('+', "%2B")
                        .replace('/', "%2F")
                        .replace('=', "%3D")
                ));
            }
        }
        SoakPath::Events => {
            for i in 0..c * 4 {
                let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
                let csr =
                    rcgen::CertificateParams::new(Vec::<String>::new())?.serialize_request(&key)?;
                let serial = DeviceSerial::parse(&format!("EVSOAK-{i:05}"))?;
                let issued = app
                    .ca
                    .issue(&profile.name, &serial, csr.der(), &app.actor)
                    .await?;
                identities.push((i, issued.record.der, key.serialize_der()));
            }
        }
        SoakPath::Tuf => {
            drop(app);
            let img = tmp.path().join("firmware.bin");
            // A 256 KiB image: file serving streams it, so descriptors and buffers get exercised.
            std::fs::write(
                &img,
                (0..256 * 1024).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
            )?;
            let exe = std::env::current_exe()?;
            let img = img.to_string_lossy().into_owned();
            for args in [
                &["tuf", "init"][..],
                &[
                    "release",
                    "publish",
                    "--model",
                    "bench-pump",
                    "--version",
                    "1.0.0",
                    "--security-version",
                    "1",
                    &img,
                ],
            ] {
                let o = Command::new(&exe)
                    .arg("--data-dir")
                    .arg(&data)
                    .arg("--passphrase-file")
                    .arg(&pass)
                    .args(args)
                    .output()?;
                if !o.status.success() {
                    bail!(
                        "{} failed: {}",
                        args.join(" "),
                        String::from_utf8_lossy(&o.stderr)
                    );
                }
            }
        }
    }

    let server = ServerProcess::start(&data, &pass)?;
    let mut clients = Vec::with_capacity(c);
    match path {
        SoakPath::Est => {
            let work = est_work.context("no EST work")?;
            let root_pem = medsec_ca::pem_encode_cert(&root_der);
            for _ in 0..c {
                clients.push(Client::Est {
                    client: medsec_agent::EstClient::new(
                        &server.https.to_string(),
                        "127.0.0.1",
                        root_pem.as_bytes(),
                        medsec_agent::Timeouts::default(),
                    )?,
                    work: work.clone(),
                });
            }
        }
        SoakPath::Ocsp => {
            let paths = Arc::new(ocsp_paths);
            for _ in 0..c {
                clients.push(Client::Plain {
                    addr: server.http,
                    sender: None,
                    paths: paths.clone(),
                });
            }
        }
        SoakPath::Tuf => {
            let paths = Arc::new(tuf_paths(&data)?);
            eprintln!("soak tuf: {} files served", paths.len());
            for _ in 0..c {
                clients.push(Client::Plain {
                    addr: server.http,
                    sender: None,
                    paths: paths.clone(),
                });
            }
        }
        SoakPath::Events => {
            let mut groups: Vec<Vec<EventDevice>> = (0..c).map(|_| Vec::new()).collect();
            for (i, leaf, key) in identities {
                let tls = crate::bench::device_tls(&root_der, &issuing_der, leaf, key)?;
                if let Some(g) = groups.get_mut(i % c) {
                    g.push(EventDevice {
                        index: i,
                        tls,
                        sender: None,
                        sent: 0,
                    });
                }
            }
            let epoch = time::OffsetDateTime::now_utc() - Duration::days(30);
            for devices in groups {
                clients.push(Client::Events {
                    addr: server.device,
                    devices,
                    next: 0,
                    epoch,
                });
            }
        }
    }
    Ok((server, clients))
}

/// Every file the repository serves: the URL paths of its metadata and targets.
fn tuf_paths(data: &Path) -> Result<Vec<String>> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_dir() {
                walk(base, &p, out)?;
            } else if let Ok(rel) = p.strip_prefix(base) {
                out.push(rel.to_path_buf());
            }
        }
        Ok(())
    }
    let repo = data.join("tuf");
    let mut files = Vec::new();
    walk(&repo, &repo, &mut files)?;
    let mut paths: Vec<String> = files
        .iter()
        .filter_map(|rel| {
            let s = rel.to_str()?;
            medsec_updates::repo::resolve_served_file(&repo, s).map(|_| format!("/tuf/{s}"))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("the repository in {} serves no files", repo.display());
    }
    Ok(paths)
}

/// Holds one path at `spec.rate` for `spec.seconds`; returns the rows and the verdict.
async fn soak_one(path: SoakPath, spec: &SoakSpec) -> Result<(Vec<Row>, Vec<String>)> {
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let (server, clients) = prepare(path, spec, &tmp).await?;
    eprintln!(
        "soak {}: {} requests/s for {} s, {} workers, server pid {}",
        path.label(),
        spec.rate,
        spec.seconds,
        clients.len(),
        server.child.id()
    );
    let window = Arc::new(Mutex::new(Window::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for mut client in clients {
        // A worker holds at most a few due requests; more means it can't keep up.
        let (tx, mut rx) = mpsc::channel::<(usize, Instant)>(4);
        senders.push(tx);
        let window = window.clone();
        tasks.push(tokio::spawn(async move {
            while let Some((i, due)) = rx.recv().await {
                let r = client.request(i).await;
                let took = due.elapsed();
                let mut w = window.lock().unwrap_or_else(|e| e.into_inner());
                w.latencies_us
                    .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
                if let Err(e) = r {
                    w.errors += 1;
                    w.first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }));
    }
    let late = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let producer = {
        let (stop, late) = (stop.clone(), late.clone());
        let rate = f64::from(spec.rate.max(1));
        tokio::spawn(async move {
            // A fine tick: requests leave close to their due time, in small groups, so the
            // latency measured from the due time is the server's and not the harness's.
            let mut tick = tokio::time::interval(StdDuration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let (mut sent, mut rr) = (0usize, 0usize);
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let due_total = (start.elapsed().as_secs_f64() * rate) as usize;
                while sent < due_total {
                    let due = start + StdDuration::from_secs_f64(sent as f64 / rate);
                    let mut placed = false;
                    for k in 0..senders.len() {
                        let w = (rr + k) % senders.len();
                        if senders[w].try_send((sent, due)).is_ok() {
                            rr = w + 1;
                            placed = true;
                            break;
                        }
                    }
                    if !placed {
                        late.fetch_add(1, Ordering::Relaxed);
                    }
                    sent += 1;
                }
            }
        })
    };

    let mut rows = Vec::new();
    let (mut first_error, mut late_seen) = (None, 0usize);
    let mut sample_every = tokio::time::interval(StdDuration::from_secs(spec.window.max(1)));
    sample_every.tick().await;
    let windows = spec.seconds.div_ceil(spec.window.max(1));
    for k in 1..=windows {
        sample_every.tick().await;
        let w = std::mem::take(&mut *window.lock().unwrap_or_else(|e| e.into_inner()));
        let (rss_kib, fds) = server
            .sample()
            .context("the server process is gone (crashed?)")?;
        let mut lat = w.latencies_us;
        lat.sort_unstable();
        let late_now = late.load(Ordering::Relaxed);
        if first_error.is_none() {
            first_error = w.first_error;
        }
        let row = Row {
            end_secs: k * spec.window.max(1),
            requests: lat.len(),
            errors: w.errors,
            late: late_now - late_seen,
            p50_ms: pct_ms(&lat, 0.5),
            p99_ms: pct_ms(&lat, 0.99),
            rss_kib,
            fds,
        };
        late_seen = late_now;
        eprintln!(
            "  {:>5} s: {} requests, {} errors, {} late, p50 {:.2} ms, p99 {:.2} ms, RSS {:.1} MiB, {} fds",
            row.end_secs,
            row.requests,
            row.errors,
            row.late,
            row.p50_ms,
            row.p99_ms,
            row.rss_kib as f64 / 1024.0,
            row.fds
        );
        rows.push(row);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = producer.await;
    // Workers end when their queues drain and close.
    for t in tasks {
        let _ = tokio::time::timeout(StdDuration::from_secs(30), t).await;
    }
    let verdict = judge(&rows, spec, first_error);
    Ok((rows, verdict))
}

/// What makes a soak fail: any error; after the first window (warm-up), any late request, RSS
/// or descriptors growing from the first third of the run to the last, or a window's p99 above
/// three times the median window p99 plus 5 ms.
fn judge(rows: &[Row], spec: &SoakSpec, first_error: Option<String>) -> Vec<String> {
    let mut bad = Vec::new();
    let errors: usize = rows.iter().map(|r| r.errors).sum();
    if errors > 0 {
        bad.push(format!(
            "{errors} requests failed; the first: {}",
            first_error.unwrap_or_default()
        ));
    }
    // The first window is warm-up (connections opening, the first responses signed): its
    // late requests and p99 are reported but not judged; its errors are.
    let late: usize = rows.iter().skip(1).map(|r| r.late).sum();
    if late > 0 {
        bad.push(format!(
            "{late} requests could not be sent on time (every worker busy): the server does not keep up with {} requests/s",
            spec.rate
        ));
    }
    let steady = rows.get(1..).unwrap_or_default();
    if steady.len() >= 3 {
        let third = steady.len() / 3;
        let (early, latest) = (
            &steady[..third.max(1)],
            &steady[steady.len() - third.max(1)..],
        );
        let max_rss = |r: &[Row]| r.iter().map(|r| r.rss_kib).max().unwrap_or(0);
        let max_fds = |r: &[Row]| r.iter().map(|r| r.fds).max().unwrap_or(0);
        let (rss0, rss1) = (max_rss(early), max_rss(latest));
        // 10% or 16 MiB, whichever is larger: allocator and page-cache noise, not a leak.
        if rss1 > rss0 + (rss0 / 10).max(16 * 1024) {
            bad.push(format!(
                "RSS grew from {:.1} MiB to {:.1} MiB",
                rss0 as f64 / 1024.0,
                rss1 as f64 / 1024.0
            ));
        }
        // Connections in flight come and go (EST opens one per request): up to the worker
        // count plus a few for the listeners and the database.
        if max_fds(latest) > max_fds(early) + spec.concurrency.max(1) + 8 {
            bad.push(format!(
                "open descriptors grew from {} to {}",
                max_fds(early),
                max_fds(latest)
            ));
        }
        let mut p99s: Vec<f64> = steady.iter().map(|r| r.p99_ms).collect();
        p99s.sort_by(f64::total_cmp);
        let median = p99s[p99s.len() / 2];
        if let Some(worst) = steady.iter().find(|r| r.p99_ms > median * 3.0 + 5.0) {
            bad.push(format!(
                "p99 not stable: {:.2} ms in the window ending at {} s against a median of {:.2} ms",
                worst.p99_ms, worst.end_secs, median
            ));
        }
    }
    bad
}

pub async fn soak(paths: &[SoakPath], specs: &[SoakSpec]) -> Result<()> {
    let mut failed = Vec::new();
    for (path, spec) in paths.iter().zip(specs) {
        if spec.rate == 0 || spec.seconds == 0 {
            bail!("--seconds and the rates must be at least 1");
        }
        let (rows, verdict) = soak_one(*path, spec).await?;
        println!(
            "### {}: {} requests/s for {} s, {} clients\n",
            path.label(),
            spec.rate,
            spec.seconds,
            spec.concurrency
        );
        println!("| until | requests | errors | late | p50 | p99 | server RSS | open fds |");
        println!("|---|---|---|---|---|---|---|---|");
        for r in &rows {
            println!(
                "| {} s | {} | {} | {} | {:.2} ms | {:.2} ms | {:.1} MiB | {} |",
                r.end_secs,
                r.requests,
                r.errors,
                r.late,
                r.p50_ms,
                r.p99_ms,
                r.rss_kib as f64 / 1024.0,
                r.fds
            );
        }
        if verdict.is_empty() {
            println!(
                "\nVerdict: steady (no errors, none late, RSS and descriptors flat, p99 stable).\n"
            );
        } else {
            println!("\nVerdict: FAILED\n");
            for v in &verdict {
                println!("- {v}");
            }
            println!();
            failed.push(path.label());
        }
    }
    if !failed.is_empty() {
        bail!("soak failed for: {}", failed.join(", "));
    }
    Ok(())
}
