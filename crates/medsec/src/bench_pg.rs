//! PostgreSQL benchmarks (issue 11): EST issuance through 1..N `medsec serve` replicas sharing
//! one database, and OCSP against a database holding a million device certificates, with its
//! size. Each run starts its own throwaway PostgreSQL (fsync and synchronous commit on, as in
//! production) and real server processes of this binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context, Result, bail};
use medsec_ca::{CaInitSpec, CaUrls, Profile};
use medsec_core::{DeviceModel, DeviceSerial, KeyAlgorithm, Name};
use medsec_store::Synchronous;
use medsec_store::pg_cluster::Cluster;
use time::Duration;

const PASSPHRASE: &str = "benchmark passphrase, not a secret";

/// Server processes, killed when the benchmark ends however it ends.
struct Replicas(Vec<Child>);

impl Drop for Replicas {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The listening line's addresses of one started replica.
struct Addrs {
    http: String,
    https: String,
}

fn start_replica(data: &Path, url: &str, children: &mut Replicas) -> Result<Addrs> {
    use std::io::BufRead;
    let exe = std::env::current_exe().context("locating this binary")?;
    let mut child = Command::new(exe)
        .arg("--data-dir")
        .arg(data)
        .args(["--database", url, "serve", "--http", "127.0.0.1:0"])
        .args(["--https", "127.0.0.1:0", "--device", "127.0.0.1:0"])
        .env("MEDSEC_KEY_PASSPHRASE", PASSPHRASE)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting medsec serve")?;
    let stdout = child.stdout.take().context("replica stdout")?;
    children.0.push(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let get = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .map(str::to_owned)
            .with_context(|| format!("no {k}= in the replica's first line {line:?}"))
    };
    Ok(Addrs {
        http: get("http")?,
        https: get("https")?,
    })
}

/// A fresh database on a new cluster, a CA and an EST profile in it, and the data directory
/// (keys, configuration) the replicas copy.
async fn prepare(tmp: &Path) -> Result<(Cluster, String, Arc<crate::App>, Profile)> {
    let cluster = Cluster::start(true)?;
    let url = cluster.create_database("bench")?;
    let dir = tmp.join("r0");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("medsec.toml"),
        "[server]\nest_rate_per_sec = 1000000000.0\nest_rate_burst = 1000000000.0\n",
    )?;
    let pass = tmp.join("passphrase");
    std::fs::write(&pass, PASSPHRASE)?;
    let app = Arc::new(
        crate::open_app(
            &dir,
            None,
            Some(pass),
            Some("bench"),
            false,
            Synchronous::Full,
            Some(&url),
        )
        .await?,
    );
    let spec = CaInitSpec {
        root_name: Name::parse("root")?,
        root_common_name: "Bench Root CA".into(),
        issuing_name: Name::parse("issuing")?,
        issuing_common_name: "Bench Issuing CA".into(),
        organization: "medsec bench".into(),
        country: None,
        key_algorithm: KeyAlgorithm::EcdsaP256,
        root_validity_days: 3650,
        issuing_validity_days: 1825,
        root_crl_validity: Duration::days(30),
        issuing_crl_validity: Duration::days(1),
        urls: CaUrls {
            crl_url_template: Some("http://127.0.0.1:8080/crl/{ca}.crl".into()),
            ocsp_url: Some("http://127.0.0.1:8080/ocsp".into()),
            crl_shards: 1,
        },
    };
    app.ca.init(&spec, &app.actor).await?;
    let profile = Profile {
        name: Name::parse("bench")?,
        model: DeviceModel::parse("bench-pump")?,
        issuer: Name::parse("issuing")?,
        key_types: vec![KeyAlgorithm::EcdsaP256],
        validity_days: 365,
        server_auth: false,
        organization: "medsec bench".into(),
        cn_template: "{model}-{serial}".into(),
        requires_bootstrap: true,
        rekey_overlap_days: 7,
    };
    app.ca.put_profile(&profile, &app.actor).await?;
    Ok((cluster, url, app, profile))
}

/// A copy of the first replica's data directory (the same CA keys and configuration).
fn copy_data(tmp: &Path, i: usize) -> Result<PathBuf> {
    let to = tmp.join(format!("r{i}"));
    let st = Command::new("cp")
        .arg("-a")
        .arg(tmp.join("r0"))
        .arg(&to)
        .status()?;
    if !st.success() {
        bail!("copying the data directory for replica {i}");
    }
    Ok(to)
}

fn pct(sorted: &[StdDuration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// EST `simpleenroll` (token, new key per device, new TLS connection per request as a device
/// would) spread round-robin over `replicas` servers on one PostgreSQL database.
pub async fn replicas(replicas: usize, count: usize, concurrency: usize) -> Result<()> {
    if replicas == 0 || count == 0 {
        bail!("--replicas and --count must be at least 1");
    }
    let tmp = tempfile::tempdir()?;
    let (_cluster, url, app, profile) = prepare(tmp.path()).await?;
    let mut children = Replicas(Vec::new());
    let mut addrs = Vec::new();
    for i in 0..replicas {
        let data = if i == 0 {
            tmp.path().join("r0")
        } else {
            copy_data(tmp.path(), i)?
        };
        addrs.push(start_replica(&data, &url, &mut children)?);
    }
    eprintln!("creating {count} enrollment tokens and device CSRs (not timed)...");
    let tokens = {
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (app, next, pname) = (app.clone(), next.clone(), profile.name.clone());
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return Ok::<_, anyhow::Error>(mine);
                    }
                    let serial = DeviceSerial::parse(&format!("PG-{i:08}"))?;
                    let (secret, _) = app
                        .ca
                        .create_enrollment_token(&pname, &serial, Duration::hours(2), &app.actor)
                        .await?;
                    mine.push((i, serial, secret));
                }
            }));
        }
        let mut all = Vec::with_capacity(count);
        for t in tasks {
            all.extend(t.await??);
        }
        all.sort_by_key(|x| x.0);
        all.into_iter().map(|(_, s, t)| (s, t)).collect::<Vec<_>>()
    };
    let csrs = crate::bench::make_csrs(count)?;
    let root = app.ca.get_ca(&Name::parse("root")?).await?;
    let root_pem = medsec_ca::pem_encode_cert(&root.cert_der);
    let clients = addrs
        .iter()
        .map(|a| {
            medsec_agent::EstClient::new(
                &a.https,
                "127.0.0.1",
                root_pem.as_bytes(),
                medsec_agent::Timeouts::default(),
            )
            .map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()?;
    eprintln!(
        "enrolling {count} devices over {replicas} replica(s) with {concurrency} concurrent clients..."
    );
    let work = Arc::new(tokens.into_iter().zip(csrs).collect::<Vec<_>>());
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (clients, work, next) = (clients.clone(), work.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(((serial, token), csr)) = work.get(i) else {
                    return Ok::<_, anyhow::Error>(lat);
                };
                let t = Instant::now();
                clients[i % clients.len()]
                    .simpleenroll(None, csr, serial, token)
                    .await
                    .with_context(|| format!("enrollment {i}"))?;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut lat = Vec::with_capacity(count);
    for t in tasks {
        lat.extend(t.await??);
    }
    let elapsed = start.elapsed();
    lat.sort();
    let issued: i64 = sqlx::query_scalar("SELECT count(*) FROM certs WHERE profile = 'bench'")
        .fetch_one(&sqlx::PgPool::connect(&url).await?)
        .await?;
    if issued as usize != count {
        bail!("{issued} certificates stored for {count} enrollments");
    }
    println!(
        "| replicas | enrollments | concurrent clients | elapsed | enrollments/s | p50 | p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {replicas} | {count} | {concurrency} | {:.2} s | {:.0} | {:.1} ms | {:.1} ms |",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
    Ok(())
}

/// An OCSP request (no nonce, SHA-1 CertID as RFC 6960 clients send) for `serial` under the
/// issuer whose subject and key hashes are given.
pub(crate) fn ocsp_request(name_hash: &[u8], key_hash: &[u8], serial: &[u8]) -> Vec<u8> {
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        let n = body.len();
        if n < 0x80 {
            v.push(n as u8);
        } else if n < 0x100 {
            v.extend([0x81, n as u8]);
        } else {
            v.extend([0x82, (n >> 8) as u8, n as u8]);
        }
        v.extend_from_slice(body);
        v
    }
    // sha1 with NULL parameters.
    let alg = [
        0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00,
    ];
    let mut int = serial.to_vec();
    if int.first().is_some_and(|b| b & 0x80 != 0) {
        int.insert(0, 0);
    }
    let mut cert_id = alg.to_vec();
    cert_id.extend(tlv(0x04, name_hash));
    cert_id.extend(tlv(0x04, key_hash));
    cert_id.extend(tlv(0x02, &int));
    let request = tlv(0x30, &tlv(0x30, &cert_id));
    let request_list = tlv(0x30, &request);
    let tbs = tlv(0x30, &request_list);
    tlv(0x30, &tbs)
}

/// OCSP over one replica whose database holds `certs` device certificates (10% revoked),
/// seeded by SQL (the certificates carry a placeholder DER of a real one's size; OCSP reads
/// their status, not their bytes), asked about random serials so the response cache rarely
/// helps. Also the database's size per million devices.
pub async fn ocsp(certs: usize, requests: usize, levels: &[usize]) -> Result<()> {
    use x509_parser::prelude::FromDer;
    let tmp = tempfile::tempdir()?;
    let (_cluster, url, app, _profile) = prepare(tmp.path()).await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    eprintln!("seeding {certs} devices and certificates by SQL...");
    let seeded = Instant::now();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO devices (model, serial, status, created_at)
         SELECT 'bench-pump', 'SN' || lpad(g::text, 8, '0'), 'active', $1
         FROM generate_series(1, $2) g",
    )
    .bind(now)
    .bind(certs as i64)
    .execute(&mut *tx)
    .await?;
    // Serial: 0x1 then 31 hex digits of md5(g): positive, minimal, 124 random-looking bits.
    sqlx::query(
        "INSERT INTO certs (serial, issuer, device_model, device_serial, profile, kind, subject,
             key_algorithm, spki_sha256, not_before, not_after, issued_at, revoked_reason,
             revoked_at, der)
         SELECT '1' || substr(md5(g::text), 1, 31), 'issuing', 'bench-pump',
             'SN' || lpad(g::text, 8, '0'), 'bench', 'issue',
             'CN=bench-pump-SN' || lpad(g::text, 8, '0'), 'ecdsa-p256', md5(g::text) || md5(g::text),
             $1 - 86400, $1 + 86400 * 365, $1 - 86400,
             CASE WHEN g % 10 = 0 THEN 'keyCompromise' END,
             CASE WHEN g % 10 = 0 THEN $1 END,
             decode(repeat(md5(g::text), 15), 'hex')
         FROM generate_series(1, $2) g",
    )
    .bind(now)
    .bind(certs as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&pool)
        .await?;
    let certs_size: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('certs')")
        .fetch_one(&pool)
        .await?;
    let fleet_size: i64 = sqlx::query_scalar(
        "SELECT pg_total_relation_size('fleet_devices') + pg_total_relation_size('devices')",
    )
    .fetch_one(&pool)
    .await?;
    eprintln!("seeded in {:.1} s", seeded.elapsed().as_secs_f64());

    let mut children = Replicas(Vec::new());
    let addrs = start_replica(&tmp.path().join("r0"), &url, &mut children)?;
    let issuing = app.ca.get_ca(&Name::parse("issuing")?).await?;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&issuing.cert_der)
        .map_err(|e| anyhow::anyhow!("issuing CA certificate: {e}"))?;
    let sha1 = |b: &[u8]| {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, b)
            .as_ref()
            .to_vec()
    };
    let name_hash = sha1(cert.subject().as_raw());
    let key_hash = sha1(&cert.public_key().subject_public_key.data);
    let serials: Vec<String> = sqlx::query_scalar(
        "SELECT serial FROM certs WHERE profile = 'bench' ORDER BY md5(serial) LIMIT $1",
    )
    .bind((requests * levels.len()).min(certs) as i64)
    .fetch_all(&pool)
    .await?;
    let reqs: Vec<Vec<u8>> = serials
        .iter()
        .map(|s| hex::decode(s).map(|b| ocsp_request(&name_hash, &key_hash, &b)))
        .collect::<Result<_, _>>()?;
    if reqs.is_empty() {
        bail!("no certificates to ask about");
    }
    let addr: std::net::SocketAddr = addrs.http.parse()?;
    // Each run asks about serials no earlier run asked about, so the response cache (60 s by
    // default) does not answer for it.
    let per = (reqs.len() / levels.len().max(1)).max(1);
    let mut rows = Vec::new();
    for (k, &concurrency) in levels.iter().enumerate() {
        let slice: Vec<Vec<u8>> = reqs.iter().skip(k * per).take(per).cloned().collect();
        let slice = if slice.is_empty() {
            reqs.clone()
        } else {
            slice
        };
        rows.push((
            concurrency,
            ocsp_load(addr, Arc::new(slice), requests, concurrency).await?,
        ));
    }
    let mib = |b: i64| b as f64 / 1_048_576.0;
    let per_million = |b: i64| mib(b) * 1_000_000.0 / certs as f64;
    println!("| metric | value |");
    println!("|---|---|");
    println!("| devices = certificates in the database | {certs} (10% revoked) |");
    println!(
        "| database size | {:.0} MiB ({:.0} MiB per million devices) |",
        mib(size),
        per_million(size)
    );
    println!(
        "| of which certs (rows, indexes, TOAST) | {:.0} MiB |",
        mib(certs_size)
    );
    println!(
        "| of which devices + fleet_devices | {:.0} MiB |",
        mib(fleet_size)
    );
    println!();
    println!(
        "| OCSP, random serials, POST, keep-alive connections | requests | requests/s | p50 | p99 | answered revoked (~10% expected) |"
    );
    println!("|---|---|---|---|---|---|");
    for (c, (rps, p50, p99, revoked)) in rows {
        println!(
            "| {c} connections | {requests} | {rps:.0} | {p50:.2} ms | {p99:.2} ms | {revoked} |"
        );
    }
    Ok(())
}

/// Closed-loop OCSP load: `concurrency` keep-alive connections, `requests` in all. Returns
/// (requests/s, p50 ms, p99 ms, answers that read revoked).
async fn ocsp_load(
    addr: std::net::SocketAddr,
    reqs: Arc<Vec<Vec<u8>>>,
    requests: usize,
    concurrency: usize,
) -> Result<(f64, f64, f64, usize)> {
    let next = Arc::new(AtomicUsize::new(0));
    eprintln!("{requests} OCSP requests (POST, keep-alive) with {concurrency} connections...");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (reqs, next) = (reqs.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let (mut lat, mut revoked) = (Vec::new(), 0usize);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return Ok::<_, anyhow::Error>((lat, revoked));
                }
                let body = reqs[i % reqs.len()].clone();
                let t = Instant::now();
                sender.ready().await?;
                let req = axum::http::Request::post("/ocsp")
                    .header(axum::http::header::HOST, addr.to_string())
                    .header(axum::http::header::CONTENT_TYPE, "application/ocsp-request")
                    .body(axum::body::Body::from(body))?;
                let resp = sender.send_request(req).await?;
                let status = resp.status();
                let bytes =
                    axum::body::to_bytes(axum::body::Body::new(resp.into_body()), 1 << 16).await?;
                lat.push(t.elapsed());
                // successful(0) responseStatus right after the outer SEQUENCE header (short or
                // long length form).
                let hdr = match bytes.get(1) {
                    Some(l) if l & 0x80 != 0 => 2 + usize::from(l & 0x7f),
                    _ => 2,
                };
                if !status.is_success() || bytes.get(hdr..hdr + 3) != Some(&[0x0a, 0x01, 0x00]) {
                    bail!("OCSP request {i}: HTTP {status}, not a successful response");
                }
                // revoked: [1] constructed inside the SingleResponse; a cheap marker scan.
                revoked += usize::from(
                    bytes
                        .windows(2)
                        .any(|w| w == [0xa1, 0x11] || w == [0xa1, 0x16]),
                );
            }
        }));
    }
    let (mut lat, mut revoked) = (Vec::with_capacity(requests), 0);
    for t in tasks {
        let (l, r) = t.await??;
        lat.extend(l);
        revoked += r;
    }
    let elapsed = start.elapsed();
    lat.sort();
    Ok((
        requests as f64 / elapsed.as_secs_f64(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        revoked,
    ))
}
