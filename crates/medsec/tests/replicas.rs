//! Three `medsec serve` replicas on one PostgreSQL database (issue 11), on loopback:
//! - one-time enrollment tokens raced on all three replicas at once: exactly one enrollment each;
//! - 10,000 EST enrollments spread across the replicas, with replica B killed by SIGKILL part
//!   way through: every enrollment B acknowledged is stored whole, no serial or token is used
//!   twice, nothing is half-written (the audit chain verifies, every device has exactly one
//!   certificate), A and C keep serving, and the once-per-period jobs continue on a survivor;
//! - a revocation made through replica A's API is served as revoked by replica C's OCSP and CRL
//!   within one second;
//! - when the replica that claimed a CRL reissue dies before storing the CRLs, the survivors
//!   take the reissue over within seconds.
//!
//! `MEDSEC_REPLICA_ENROLLMENTS` lowers the count when debugging; CI runs the full 10,000.

mod common;
use common::server::*;
use common::*;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use medsec_ca::{Ca, CaStore};
use medsec_core::{Actor, CertSerial, DeviceSerial, JobLeases, Name};
use medsec_store::PgStore;
use medsec_store::pg_cluster::Cluster;

const CONCURRENCY: usize = 24;
/// Tokens tried on all three replicas at once.
const RACED: usize = 60;

/// (work index, certificate serial hex, certificate DER, replica index).
type Acked = (usize, String, Vec<u8>, usize);

fn enrollments() -> usize {
    std::env::var("MEDSEC_REPLICA_ENROLLMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// A data directory for one more replica: the same CA keys and configuration (copied), the
/// same database.
fn replica_env(template: &Env, url: &str) -> Env {
    let mut env = Env::new();
    env.extra_env
        .push(("MEDSEC_DATABASE_URL".into(), url.to_owned()));
    let st = Command::new("cp")
        .arg("-a")
        .arg(template.data())
        .arg(env.data())
        .status()
        .unwrap();
    assert!(st.success());
    env
}

fn csr() -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .der()
        .to_vec()
}

fn serial_of(der: &[u8]) -> String {
    let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
    hex::encode(c.raw_serial())
}

/// Whether the CRL `srv` serves for the issuing CA lists `serial` (hex).
fn crl_lists(env: &Env, srv: &Server, serial: &str) -> bool {
    let (_, code) = curl(
        env,
        &[
            "-o",
            "c.crl",
            &format!("http://{}/crl/issuing.crl", srv.http),
        ],
    );
    if code != "200" {
        return false;
    }
    let txt = env.openssl(&["crl", "-inform", "DER", "-in", "c.crl", "-noout", "-text"]);
    String::from_utf8_lossy(&txt.stdout)
        .to_lowercase()
        .replace(':', "")
        .contains(&serial.to_lowercase())
}

fn pid_of(srv: &Server) -> u32 {
    srv.child.id()
}

#[test]
fn three_replicas_on_one_database() {
    let n = enrollments();
    let url = Cluster::fresh_database().expect("PostgreSQL server programs");
    let mut a_env = Env::new();
    a_env
        .extra_env
        .push(("MEDSEC_DATABASE_URL".into(), url.clone()));
    a_env.ok(&["ca", "init", "--organization", "Acme Medical"]);
    a_env.ok(&["profile", "set", "--name", "default", "--model", "pump-x2"]);
    // Jobs every second so that the test sees several periods; enrollment is not rate limited
    // (every client is 127.0.0.1 here).
    std::fs::create_dir_all(a_env.data()).unwrap();
    std::fs::write(
        a_env.data().join("medsec.toml"),
        "[server]\njobs_interval_secs = 1\nest_rate_per_sec = 1000000.0\nest_rate_burst = 1000000.0\n",
    )
    .unwrap();
    let b_env = replica_env(&a_env, &url);
    let c_env = replica_env(&a_env, &url);
    let a = start(&a_env);
    let b = start(&b_env);
    let c = start(&c_env);
    let holders: HashMap<u32, &str> = [(pid_of(&a), "A"), (pid_of(&b), "B"), (pid_of(&c), "C")]
        .into_iter()
        .collect();
    let root_pem = a_env.ok(&["ca", "show", "root", "--pem"]);
    let addrs = [a.https.clone(), b.https.clone(), c.https.clone()];
    let b_server = Arc::new(Mutex::new(Some(b)));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = rt
        .block_on(PgStore::connect(&url, &Default::default()))
        .unwrap();

    // Tokens, made in this process over the same database (the keys are not needed for that).
    let keys_dir = tempfile::tempdir().unwrap();
    let pass = medsec_keys::Passphrase::new(b"unused by token creation".to_vec()).unwrap();
    let keys = Arc::new(medsec_keys::EncryptedFileKeySource::new(
        keys_dir.path().to_path_buf(),
        pass,
    ));
    let ca = Arc::new(Ca::new(store.clone(), keys));
    let actor = Actor::parse("test:replicas").unwrap();
    let profile = Name::parse("default").unwrap();
    let total = n + RACED;
    let tokens: Vec<(DeviceSerial, String)> = rt.block_on(async {
        let next = Arc::new(AtomicUsize::new(0));
        let out = Arc::new(Mutex::new(Vec::with_capacity(total)));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (ca, next, out, actor, profile) = (
                ca.clone(),
                next.clone(),
                out.clone(),
                actor.clone(),
                profile.clone(),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return;
                    }
                    let s = DeviceSerial::parse(&format!("R-{i:06}")).unwrap();
                    let (secret, _) = ca
                        .create_enrollment_token(&profile, &s, time::Duration::hours(2), &actor)
                        .await
                        .unwrap();
                    out.lock().unwrap().push((i, s, secret));
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut v = std::mem::take(&mut *out.lock().unwrap());
        v.sort_by_key(|x| x.0);
        v.into_iter().map(|(_, s, t)| (s, t)).collect()
    });
    let csrs: Vec<Vec<u8>> = {
        let half = total / 2;
        let h = std::thread::spawn(move || (0..half).map(|_| csr()).collect::<Vec<_>>());
        let mut v: Vec<Vec<u8>> = (half..total).map(|_| csr()).collect();
        let mut first = h.join().unwrap();
        first.append(&mut v);
        first
    };
    let clients: Vec<Arc<medsec_agent::EstClient>> = addrs
        .iter()
        .map(|addr| {
            Arc::new(
                medsec_agent::EstClient::new(
                    addr,
                    "127.0.0.1",
                    root_pem.as_bytes(),
                    medsec_agent::Timeouts::default(),
                )
                .unwrap(),
            )
        })
        .collect();

    // 1. The same token on all three replicas at the same moment: exactly one enrollment.
    let raced_wins: Vec<usize> = rt.block_on(async {
        let mut per_token = Vec::new();
        for i in 0..RACED {
            let (serial, token) = tokens[n + i].clone();
            let mut tasks = Vec::new();
            for c in &clients {
                let (c, serial, token, csr) = (
                    c.clone(),
                    serial.clone(),
                    token.clone(),
                    csrs[n + i].clone(),
                );
                tasks.push(tokio::spawn(async move {
                    c.simpleenroll(None, &csr, &serial, &token).await.is_ok()
                }));
            }
            let mut wins = 0;
            for t in tasks {
                wins += usize::from(t.await.unwrap());
            }
            per_token.push(wins);
        }
        per_token
    });
    assert!(
        raced_wins.iter().all(|w| *w == 1),
        "each raced token enrolls exactly once: {raced_wins:?}"
    );

    // 2. The load, with replica B killed a third of the way through.
    struct Outcome {
        acked: Mutex<Vec<Acked>>,
        refused_after_failover: Mutex<Vec<usize>>,
        done: AtomicUsize,
    }
    let out = Arc::new(Outcome {
        acked: Mutex::new(Vec::new()),
        refused_after_failover: Mutex::new(Vec::new()),
        done: AtomicUsize::new(0),
    });
    let killed_at = Arc::new(Mutex::new(None::<i64>));
    let started = Instant::now();
    rt.block_on(async {
        let work = Arc::new(
            tokens[..n]
                .iter()
                .cloned()
                .zip(csrs[..n].iter().cloned())
                .collect::<Vec<_>>(),
        );
        let next = Arc::new(AtomicUsize::new(0));
        let b_alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let mut tasks = Vec::new();
        for _ in 0..CONCURRENCY {
            let (work, next, out, clients, b_alive) = (
                work.clone(),
                next.clone(),
                out.clone(),
                clients.clone(),
                b_alive.clone(),
            );
            let (b_server, killed_at) = (b_server.clone(), killed_at.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(((serial, token), csr)) = work.get(i) else {
                        return;
                    };
                    if i == work.len() / 3 {
                        // SIGKILL: no shutdown path runs, in-flight requests die with it.
                        if let Some(mut b) = b_server.lock().unwrap().take() {
                            b.child.kill().unwrap();
                            b.child.wait().unwrap();
                            *killed_at.lock().unwrap() =
                                Some(time::OffsetDateTime::now_utc().unix_timestamp());
                            b_alive.store(false, Ordering::SeqCst);
                        }
                    }
                    let mut r = i % 3;
                    if r == 1 && !b_alive.load(Ordering::SeqCst) {
                        r = 2;
                    }
                    let mut failed_over = false;
                    loop {
                        match clients[r].simpleenroll(None, csr, serial, token).await {
                            Ok(certs) => {
                                let der = certs.into_iter().next().unwrap();
                                out.acked.lock().unwrap().push((i, serial_of(&der), der, r));
                                break;
                            }
                            Err(e) if r == 1 => {
                                // B died under this request: try a survivor with the same token.
                                let _ = e;
                                failed_over = true;
                                r = 0;
                            }
                            Err(e) if failed_over => {
                                // The token was spent by B's commit just before it died.
                                let msg = e.to_string();
                                assert!(
                                    msg.contains("401") || msg.to_lowercase().contains("token"),
                                    "{msg}"
                                );
                                out.refused_after_failover.lock().unwrap().push(i);
                                break;
                            }
                            Err(e) => panic!("enrollment {i} on replica {r}: {e}"),
                        }
                    }
                    out.done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let elapsed = started.elapsed();
    eprintln!(
        "{n} enrollments over 3 replicas (one killed) in {:.1} s",
        elapsed.as_secs_f64()
    );
    let acked = std::mem::take(&mut *out.acked.lock().unwrap());
    let refused = std::mem::take(&mut *out.refused_after_failover.lock().unwrap());
    assert_eq!(
        acked.len() + refused.len(),
        n,
        "every enrollment was answered"
    );
    assert!(
        refused.len() <= CONCURRENCY,
        "only requests in flight when B died can have been spent unanswered: {}",
        refused.len()
    );
    let by_replica = |r: usize| acked.iter().filter(|x| x.3 == r).count();
    assert!(by_replica(0) > 0 && by_replica(1) > 0 && by_replica(2) > 0);
    let unique: HashSet<&String> = acked.iter().map(|x| &x.1).collect();
    assert_eq!(unique.len(), acked.len(), "no serial issued twice");

    rt.block_on(async {
        // Every acknowledged certificate is stored, byte for byte, B's included.
        for (i, serial, der, r) in &acked {
            let s: CertSerial = serial.parse().unwrap();
            let c = store
                .get_cert(&s)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("enrollment {i} acknowledged by replica {r} is missing"));
            assert_eq!(&c.der, der, "enrollment {i}");
        }
        // The ones B spent without answering are stored whole too: one certificate per device,
        // every token used once and only by its device.
        let per_device: Vec<(String, i64)> = sqlx::query_as(
            "SELECT device_serial, count(*) FROM certs WHERE profile = 'default' GROUP BY device_serial",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(per_device.len(), n + RACED, "every device enrolled");
        assert!(per_device.iter().all(|(_, k)| *k == 1), "one certificate per device");
        let used: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM enrollment_tokens WHERE used_at IS NOT NULL",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(used as usize, n + RACED);
    });

    // The jobs: each (job, period) ran once (the key), and after the kill only survivors ran.
    let killed = killed_at.lock().unwrap().expect("B was killed");
    std::thread::sleep(Duration::from_secs(3));
    let runs = rt.block_on(store.job_runs("crl-refresh", 10_000)).unwrap();
    let holder_of = |h: &str| -> &str {
        holders
            .iter()
            .find(|(pid, _)| h.contains(&format!("-{pid}-")))
            .map(|(_, n)| *n)
            .unwrap_or("?")
    };
    let after: Vec<&str> = runs
        .iter()
        .filter(|r| r.started_at > killed + 1)
        .map(|r| holder_of(&r.holder))
        .collect();
    assert!(!after.is_empty(), "the CRL job kept running after B died");
    assert!(
        after.iter().all(|h| *h == "A" || *h == "C"),
        "only survivors ran it: {after:?}"
    );
    let periods: HashSet<i64> = runs.iter().map(|r| r.period).collect();
    assert_eq!(periods.len(), runs.len(), "one run per period");

    // 3. Revoke through A's API; C's OCSP and CRL say revoked within a second.
    let (_, _, der, _) = &acked[acked.len() / 2];
    std::fs::write(
        a_env.path("victim.pem"),
        pem::encode(&pem::Pem::new("CERTIFICATE", der.clone())),
    )
    .unwrap();
    let victim = serial_of(der);
    let auth = api_auth(&a_env, "operator");
    let revoke_on_a = |serial: &str| {
        let (body, code) = curl(
            &a_env,
            &[
                "--cacert",
                "root.pem",
                "-H",
                &auth,
                "-H",
                "content-type: application/json",
                "--data",
                r#"{"reason":"keyCompromise"}"#,
                &format!("https://{}/api/v1/certificates/{serial}/revoke", a.https),
            ],
        );
        assert_eq!(code, "200", "{body}");
    };
    revoke_on_a(&victim);
    let revoked_at = Instant::now();
    let revoked_unix = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut ocsp_seen = None;
    let mut crl_seen = None;
    while revoked_at.elapsed() < Duration::from_secs(5)
        && (ocsp_seen.is_none() || crl_seen.is_none())
    {
        if ocsp_seen.is_none() {
            let o = a_env.openssl(&[
                "ocsp",
                "-issuer",
                "chain.pem",
                "-cert",
                "victim.pem",
                "-url",
                &format!("http://{}/ocsp", c.http),
                "-CAfile",
                "all.pem",
                "-no_nonce",
            ]);
            if String::from_utf8_lossy(&o.stdout).contains("victim.pem: revoked") {
                ocsp_seen = Some(revoked_at.elapsed());
            }
        }
        if crl_seen.is_none() && crl_lists(&a_env, &c, &victim) {
            crl_seen = Some(revoked_at.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ocsp_seen = ocsp_seen.expect("replica C's OCSP never said revoked");
    let crl_seen = crl_seen.expect("replica C's CRL never listed it");
    eprintln!("revoked on A: C's OCSP after {ocsp_seen:?}, C's CRL after {crl_seen:?}");
    assert!(ocsp_seen < Duration::from_secs(1), "{ocsp_seen:?}");
    assert!(crl_seen < Duration::from_secs(1), "{crl_seen:?}");
    // All three saw the new revoked set; one of them reissued the CRLs for it.
    let reissues = rt
        .block_on(store.job_runs("crl-reissue", 100))
        .unwrap()
        .into_iter()
        .filter(|r| r.started_at >= revoked_unix - 1)
        .count();
    assert_eq!(reissues, 1, "one reissue for one revocation");

    // 4. A replica claims the CRL reissue of the next revocation and dies before it stores
    // the CRLs (played here: the claim is taken under a holder that never finishes). The
    // survivors take the reissue over: C's CRL lists the revocation within seconds, not when
    // the CRL is next due (hours).
    let (_, _, der2, _) = &acked[acked.len() / 3];
    let victim2 = serial_of(der2);
    assert_ne!(victim2, victim);
    let mut serials = rt.block_on(store.revoked_serials()).unwrap();
    serials.push(victim2.parse::<CertSerial>().unwrap());
    let key = medsec_server::crl_reissue_key(&serials);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        rt.block_on(store.claim_run("crl-reissue", key, "replica-killed-mid-reissue", now))
            .unwrap()
    );
    revoke_on_a(&victim2);
    let revoked_at = Instant::now();
    let mut crl_seen = None;
    while crl_seen.is_none() && revoked_at.elapsed() < Duration::from_secs(20) {
        if crl_lists(&a_env, &c, &victim2) {
            crl_seen = Some(revoked_at.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let crl_seen =
        crl_seen.expect("the survivors never took over the reissue of the killed replica");
    eprintln!("reissue claimed by a dead replica: C's CRL lists the revocation after {crl_seen:?}");
    // Not sooner: the claim held the live replicas back, so it was a takeover.
    assert!(
        crl_seen >= Duration::from_secs(4),
        "listed after {crl_seen:?}, before any takeover was due"
    );

    // Nothing half-written anywhere: the audit chain verifies end to end.
    contains(&a_env.ok(&["audit", "verify"]), "intact");
    drop((a, c));
}
