//! Shared server state: the CA, the in-process revocation view, and the OCSP response cache.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use medsec_ca::{Ca, CaStore};
use medsec_core::{Actor, Name};

/// One audit entry as the dashboard lists it.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub seq: i64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
}

/// Read access to the audit log for the dashboard; the binary adapts the store to it (this
/// crate does not depend on `medsec-store`).
#[async_trait::async_trait]
pub trait AuditView: Send + Sync {
    /// Verifies the whole chain: the number of intact entries, or where it breaks.
    async fn verify(&self) -> Result<u64, String>;
    /// Entries with `seq > after`, oldest first.
    async fn page(&self, after: i64, limit: u32) -> Result<Vec<AuditRow>, String>;
}

/// What every handler reaches.
pub struct AppState<S> {
    pub ca: Ca<S>,
    /// Audit actor for changes made by the server itself (enrollments carry the device).
    pub actor: Actor,
    /// Profile used by EST requests without a label.
    pub default_profile: Option<Name>,
    pub watch: Arc<RevocationWatch>,
    pub ocsp_cache: OcspCache,
    pub auth: Arc<dyn medsec_auth::AuthStore>,
    /// Verified API tokens, keyed by the SHA-256 of the presented string, so that Argon2id runs
    /// once per token per TTL rather than on every request.
    pub(crate) token_cache: Mutex<HashMap<[u8; 32], (medsec_auth::Principal, Instant)>>,
    pub(crate) limiter: crate::limit::RateLimiter,
    /// Manufacturing CAs (DER) whose device certificates (IDevIDs) may bootstrap enrollment.
    pub idevid_cas: Vec<Vec<u8>>,
    /// Vulnerability management; its API answers 503 when absent.
    pub inventory: Option<Arc<medsec_inventory::Inventory>>,
    /// The manufacturer named in exported SBOMs and as VEX publisher.
    pub manufacturer: String,
    /// The VEX / CSAF publisher namespace URI.
    pub vex_namespace: String,
    /// Secure updates: the director; its routes answer 503 when absent.
    pub director: Option<Arc<medsec_updates::Director>>,
    /// The TUF repository directory served under `/tuf/` (plain HTTP: the metadata is signed).
    pub tuf_dir: Option<std::path::PathBuf>,
    /// Risk management; its routes answer 503 when absent.
    pub risk: Option<Arc<medsec_risk::service::RiskService>>,
    /// Post-market surveillance; its routes answer 503 when absent.
    pub postmarket: Option<Arc<medsec_postmarket::service::PostmarketService>>,
    pub postmarket_settings: crate::postmarket_api::PostmarketSettings,
    /// Researcher reports per client address (separate from enrollment's budget).
    pub(crate) cvd_limiter: crate::limit::RateLimiter,
    /// Dashboard users and sessions; `/ui/` answers with the sign-in page only when present.
    pub users: Option<Arc<dyn medsec_auth::users::UserStore>>,
    pub session_policy: medsec_auth::users::SessionPolicy,
    /// The fleet read model behind the dashboard's fleet pages.
    pub fleet: Option<Arc<dyn medsec_fleet::FleetStore>>,
    /// The audit log as the dashboard shows it.
    pub audit: Option<Arc<dyn AuditView>>,
    /// Imported test evidence for the documentation; docs routes answer without it.
    pub evidence: Option<Arc<dyn medsec_docs::evidence::EvidenceStore>>,
    /// Sign-in attempts per client address.
    pub(crate) login_limiter: crate::limit::RateLimiter,
    /// When the retention job last purged events.
    pub(crate) last_purge: Mutex<Option<time::OffsetDateTime>>,
    /// Serials of revoked certificates refused in device handshakes, for the post-market
    /// "use of a revoked certificate" event; the receiver is taken by `serve`.
    pub(crate) revoked_use: tokio::sync::mpsc::Sender<medsec_core::CertSerial>,
    pub(crate) revoked_use_rx: Mutex<Option<tokio::sync::mpsc::Receiver<medsec_core::CertSerial>>>,
    /// Counters and histograms exposed at `/metrics`; kept even when the route is off (a few
    /// atomics), so turning it on needs no code path change.
    pub(crate) metrics: crate::metrics::Metrics,
    /// Whether the plain listener serves `/metrics`.
    pub metrics_enabled: bool,
    /// Claims of periodic jobs shared with the other replicas on the same database; `None`
    /// for a single process, which runs every job itself.
    pub leases: Option<Arc<dyn medsec_core::JobLeases>>,
    /// This process's name among the replicas (recorded with the job runs it claims).
    pub replica: String,
    /// How often the periodic jobs run (one claim per job per interval across replicas).
    pub jobs_interval: Duration,
    /// Lifetime of the self-issued server certificate, and how often the server checks
    /// whether two thirds of it have passed (then it renews the certificate in place).
    pub server_cert_lifetime: Duration,
    pub server_cert_check: Duration,
    /// The store's connection-pool figures for `/metrics`, when the binary supplies them.
    pub(crate) pool_stats: Option<crate::metrics::PoolStatsFn>,
    /// The last failed issuing-key load seen by `/readyz` and why, so probes do not rerun the
    /// key's KDF every few seconds.
    pub(crate) key_failure: Mutex<Option<(Instant, String)>>,
}

fn cvd_limiter(s: &crate::postmarket_api::PostmarketSettings) -> crate::limit::RateLimiter {
    crate::limit::RateLimiter::new(s.cvd_per_hour / 3600.0, s.cvd_burst)
}

impl<S: CaStore> AppState<S> {
    pub fn new(
        ca: Ca<S>,
        default_profile: Option<Name>,
        auth: Arc<dyn medsec_auth::AuthStore>,
    ) -> Self {
        // Bounded: a flood of handshakes with a revoked certificate drops observations (one
        // per minute per certificate is all the event log keeps anyway), never blocks TLS.
        let (revoked_use, revoked_use_rx) = tokio::sync::mpsc::channel(1024);
        AppState {
            ca,
            actor: Actor::system(),
            default_profile,
            watch: Arc::new(RevocationWatch::default()),
            ocsp_cache: OcspCache::default(),
            auth,
            token_cache: Mutex::new(HashMap::new()),
            limiter: crate::limit::RateLimiter::default(),
            idevid_cas: Vec::new(),
            inventory: None,
            manufacturer: "medsec".into(),
            vex_namespace: "urn:medsec:publisher:medsec".into(),
            director: None,
            tuf_dir: None,
            risk: None,
            postmarket: None,
            postmarket_settings: crate::postmarket_api::PostmarketSettings::default(),
            cvd_limiter: cvd_limiter(&crate::postmarket_api::PostmarketSettings::default()),
            evidence: None,
            users: None,
            session_policy: medsec_auth::users::SessionPolicy::default(),
            fleet: None,
            audit: None,
            login_limiter: crate::limit::RateLimiter::new(0.5, 20.0),
            last_purge: Mutex::new(None),
            revoked_use,
            revoked_use_rx: Mutex::new(Some(revoked_use_rx)),
            metrics: crate::metrics::Metrics::default(),
            metrics_enabled: true,
            pool_stats: None,
            key_failure: Mutex::new(None),
            leases: None,
            replica: crate::cluster::replica_id(),
            jobs_interval: Duration::from_secs(30),
            server_cert_lifetime: Duration::from_secs(7 * 86_400),
            server_cert_check: Duration::from_secs(600),
        }
    }

    /// Runs the periodic jobs every `interval`, each claimed through `leases` so that the
    /// replicas sharing one database run each job once per interval.
    pub fn with_jobs(
        mut self,
        interval: Duration,
        leases: Option<Arc<dyn medsec_core::JobLeases>>,
    ) -> Self {
        self.jobs_interval = interval.max(Duration::from_secs(1));
        self.leases = leases;
        self
    }

    /// Serves `/metrics` on the plain listener (the default) or not.
    pub fn with_metrics(mut self, enabled: bool) -> Self {
        self.metrics_enabled = enabled;
        self
    }

    /// Adds the store's connection-pool gauges to `/metrics` (none when `None`).
    pub fn with_pool_stats(mut self, f: Option<crate::metrics::PoolStatsFn>) -> Self {
        self.pool_stats = f;
        self
    }

    /// Serves the dashboard: users and sessions, the fleet read model and the audit log.
    pub fn with_dashboard(
        mut self,
        users: Arc<dyn medsec_auth::users::UserStore>,
        fleet: Arc<dyn medsec_fleet::FleetStore>,
        audit: Arc<dyn AuditView>,
    ) -> Self {
        self.users = Some(users);
        self.fleet = Some(fleet);
        self.audit = Some(audit);
        self
    }

    /// Documentation builds include this store's test evidence.
    pub fn with_evidence(mut self, e: Arc<dyn medsec_docs::evidence::EvidenceStore>) -> Self {
        self.evidence = Some(e);
        self
    }

    /// Serves post-market surveillance: event ingest, incidents, CVD intake, security.txt.
    pub fn with_postmarket(
        mut self,
        svc: Arc<medsec_postmarket::service::PostmarketService>,
        settings: crate::postmarket_api::PostmarketSettings,
    ) -> Self {
        self.cvd_limiter = cvd_limiter(&settings);
        self.postmarket = Some(svc);
        self.postmarket_settings = settings;
        self
    }

    /// Serves risk management.
    pub fn with_risk(mut self, risk: Arc<medsec_risk::service::RiskService>) -> Self {
        self.risk = Some(risk);
        self
    }

    /// Serves secure updates: the director's instructions and the TUF repository in `tuf_dir`.
    pub fn with_updates(
        mut self,
        director: Arc<medsec_updates::Director>,
        tuf_dir: Option<std::path::PathBuf>,
    ) -> Self {
        self.director = Some(director);
        self.tuf_dir = tuf_dir;
        self
    }

    /// Serves vulnerability management, naming `manufacturer` (under `namespace`) as the
    /// publisher of exported SBOMs and VEX documents.
    pub fn with_inventory(
        mut self,
        inventory: Arc<medsec_inventory::Inventory>,
        manufacturer: String,
        namespace: String,
    ) -> Self {
        self.inventory = Some(inventory);
        self.manufacturer = manufacturer;
        self.vex_namespace = namespace;
        self
    }

    /// Enrollment requests per second and burst allowed per client address.
    pub fn with_rate_limit(mut self, per_second: f64, burst: f64) -> Self {
        self.limiter = crate::limit::RateLimiter::new(per_second, burst);
        self
    }

    /// How long OCSP responses are cached (zero: not at all).
    /// Lifetime of the self-issued server certificate and the interval of its renewal check.
    pub fn with_server_cert(mut self, lifetime: Duration, check: Duration) -> Self {
        self.server_cert_lifetime = lifetime;
        self.server_cert_check = check.max(Duration::from_secs(1));
        self
    }

    pub fn with_ocsp_cache_ttl(mut self, ttl: Duration) -> Self {
        self.ocsp_cache = OcspCache::new(ttl);
        self
    }

    /// Trusts IDevIDs from these manufacturing CAs (DER) for first enrollment.
    pub fn with_idevid_cas(mut self, cas: Vec<Vec<u8>>) -> Self {
        self.idevid_cas = cas;
        self
    }

    /// Called after any revocation this process makes, so that OCSP, CRLs and the gateway
    /// reflect it at once rather than at the next poll.
    pub async fn revocation_changed(&self) {
        self.watch.refresh(self).await;
    }

    /// Revokes a certificate for the API and the dashboard alike; OCSP, CRLs and the device
    /// gateway see it before this returns.
    pub async fn revoke(
        &self,
        serial: &medsec_core::CertSerial,
        reason: medsec_core::RevocationReason,
        invalidity_date: Option<time::OffsetDateTime>,
        actor: &Actor,
    ) -> Result<medsec_ca::CertRecord, medsec_ca::CaError> {
        let c = self
            .ca
            .revoke(serial, reason, invalidity_date, actor)
            .await?;
        self.revocation_changed().await;
        Ok(c)
    }

    /// Retires a device (revoking all its certificates), visible at once like [`Self::revoke`].
    pub async fn retire(
        &self,
        device: &medsec_core::DeviceId,
        actor: &Actor,
    ) -> Result<Vec<medsec_core::CertSerial>, medsec_ca::CaError> {
        let r = self.ca.retire(device, actor).await?;
        self.revocation_changed().await;
        Ok(r)
    }
}

/// The set of revoked certificate serials, read at every TLS handshake on the device listener
/// (a rustls verifier cannot wait on the database), refreshed from the store by polling and
/// immediately after in-process revocations.
#[derive(Default)]
pub struct RevocationWatch {
    revoked: RwLock<HashSet<Vec<u8>>>,
    generation: AtomicU64,
    /// Set once this process has read the revoked set (its first look decides differently).
    loaded: std::sync::atomic::AtomicBool,
    /// CRL reissues another replica claimed, watched until they finish.
    pending: Mutex<Vec<PendingReissue>>,
}

/// A CRL reissue another replica claimed: which revocations it covers, and when this process
/// takes it over if it has not finished by then.
struct PendingReissue {
    key: i64,
    changed: Vec<medsec_core::CertSerial>,
    due: Instant,
}

/// How long a claimed CRL reissue may stay unfinished before the other replicas do it. A
/// reissue takes milliseconds; a holder that has not finished after this was most likely
/// killed, and without a takeover the CRLs would stay stale until they are due (hours). A
/// takeover of a merely slow holder costs a duplicate CRL, which is harmless.
const TAKEOVER: Duration = Duration::from_secs(5);

/// How often the store is polled for revocations made by other processes (the CLI).
const POLL: Duration = Duration::from_millis(500);

impl RevocationWatch {
    /// Is this serial (minimal big-endian magnitude) revoked?
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        self.revoked
            .read()
            .map(|s| s.contains(serial))
            .unwrap_or(true)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) async fn refresh<S: CaStore>(&self, state: &AppState<S>) {
        let serials = match state.ca.revoked_serials().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("revocation refresh failed: {e}");
                return;
            }
        };
        self.take_over_stalled(state).await;
        let first_look = !self.loaded.swap(true, Ordering::AcqRel);
        let new: HashSet<Vec<u8>> = serials.iter().map(|s| s.as_bytes().to_vec()).collect();
        // The serials revoked since the last look decide which CRL shards to reissue.
        let added: Option<Vec<medsec_core::CertSerial>> = match self.revoked.read() {
            Ok(cur) if *cur == new => return,
            Ok(cur) => Some(
                serials
                    .iter()
                    .filter(|s| !cur.contains(s.as_bytes()))
                    .cloned()
                    .collect(),
            ),
            Err(_) => None,
        };
        if let Ok(mut cur) = self.revoked.write() {
            *cur = new;
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        state.ocsp_cache.clear();
        // Every replica sees the same change; one of them reissues the CRLs (they are served
        // from the shared store), claimed by a digest of the revoked set that all compute
        // alike. A failed claim reissues anyway: a duplicate CRL is harmless, a stale one not.
        // With one process the claim is always its own, so an in-process revocation still
        // returns with its CRLs reissued; among replicas the winner may be another one, a few
        // milliseconds later.
        // A process's first look also reissues when the set's claim was taken but never
        // finished: its holder was killed between claiming and storing the CRLs (with one
        // server, that holder is this process's previous run), and nobody else would.
        let mut claimed = None;
        if let Some(leases) = state.leases.as_deref() {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let key = crl_reissue_key(&serials);
            match leases
                .claim_run("crl-reissue", key, &state.replica, now)
                .await
            {
                Ok(true) => claimed = Some((leases, key)),
                Ok(false) if first_look && !reissue_finished(leases, key).await => {}
                Ok(false) => {
                    // Another replica's: watched, and taken over should its holder die.
                    if let Ok(mut p) = self.pending.lock() {
                        p.push(PendingReissue {
                            key,
                            changed: added.unwrap_or(serials),
                            due: Instant::now() + TAKEOVER,
                        });
                    }
                    return;
                }
                Err(_) => {}
            }
        }
        let ok = reissue_crls(state, added.as_deref().unwrap_or(&serials)).await;
        if let Some((leases, key)) = claimed {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            if let Err(e) = leases.finish_run("crl-reissue", key, ok, now).await {
                tracing::warn!("recording the CRL reissue: {e}");
            }
        }
    }

    /// Reissues the CRLs of every reissue another replica claimed that is due and has not
    /// finished.
    async fn take_over_stalled<S: CaStore>(&self, state: &AppState<S>) {
        let due: Vec<PendingReissue> = match self.pending.lock() {
            Ok(mut p) if !p.is_empty() => {
                let now = Instant::now();
                let (due, waiting) = p.drain(..).partition(|r| r.due <= now);
                *p = waiting;
                due
            }
            _ => return,
        };
        let Some(leases) = state.leases.as_deref() else {
            return;
        };
        for r in due {
            if reissue_finished(leases, r.key).await {
                continue;
            }
            tracing::warn!(
                "a CRL reissue claimed by another replica has not finished after {TAKEOVER:?} \
                 (was it killed?); reissuing here"
            );
            reissue_crls(state, &r.changed).await;
        }
    }

    pub fn spawn<S: CaStore + 'static>(self: Arc<Self>, state: Arc<AppState<S>>) {
        tokio::spawn(async move {
            loop {
                self.refresh(&state).await;
                tokio::time::sleep(POLL).await;
            }
        });
    }
}

/// Regenerates the CRLs that `changed` revocations affect, so the distribution points serve
/// them at once: every unsharded CA's CRL, and of a sharded CA only the shards that changed.
/// False when any failed.
async fn reissue_crls<S: CaStore>(
    state: &AppState<S>,
    changed: &[medsec_core::CertSerial],
) -> bool {
    let mut ok = true;
    match state.ca.crls_affected_by(changed).await {
        Ok(list) => {
            for (name, shard) in list {
                if let Err(e) = state
                    .ca
                    .generate_crl_shard(&name, shard, &state.actor)
                    .await
                {
                    ok = false;
                    tracing::warn!("CRL regeneration for {name} shard {shard} failed: {e}");
                }
            }
        }
        Err(e) => {
            ok = false;
            tracing::warn!("CRL regeneration after revocation failed: {e}");
        }
    }
    ok
}

/// Whether the CRL reissue claimed for `key` was carried out (finished, successfully).
async fn reissue_finished(leases: &dyn medsec_core::JobLeases, key: i64) -> bool {
    leases
        .job_runs("crl-reissue", 64)
        .await
        .map(|runs| {
            runs.iter()
                .any(|r| r.period == key && r.finished_at.is_some() && r.ok == Some(true))
        })
        .unwrap_or(false)
}

/// The key under which replicas claim the CRL reissue for a set of revoked serials (as the
/// store lists them), computed alike by every replica: the first 8 bytes of SHA-256 over the
/// sorted serials. Public for tests that play a replica.
pub fn crl_reissue_key(serials: &[medsec_core::CertSerial]) -> i64 {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<&[u8]> = serials.iter().map(|s| s.as_bytes()).collect();
    sorted.sort_unstable();
    let mut h = Sha256::new();
    for s in sorted {
        h.update((s.len() as u32).to_be_bytes());
        h.update(s);
    }
    let d = h.finalize();
    let mut k = [0u8; 8];
    k.copy_from_slice(&d[..8]);
    i64::from_be_bytes(k)
}

/// OCSP responses keyed by the request bytes, dropped on any revocation change and at expiry.
///
/// Each entry expires at its own moment, somewhere in the back half of the TTL. With one fixed
/// TTL, every response cached in the same warm-up second (a fleet coming online, a restart, a
/// cache flush on revocation) expires in the same second and all of them are re-signed at once;
/// the soak at 10,000 requests/s saw that burst as requests that could not be dispatched on time.
pub struct OcspCache {
    map: Mutex<HashMap<Vec<u8>, CachedResponse>>,
    ttl: Duration,
    spread: std::collections::hash_map::RandomState,
    puts: AtomicU64,
}

impl Default for OcspCache {
    fn default() -> Self {
        OcspCache::new(OCSP_CACHE_TTL)
    }
}

/// A DER response and until when it may be served.
type CachedResponse = (Vec<u8>, Instant);

/// How long a cached response is served at most; well under the responses' own validity.
const OCSP_CACHE_TTL: Duration = Duration::from_secs(60);
const OCSP_CACHE_MAX: usize = 100_000;

impl OcspCache {
    /// A zero `ttl` turns caching off (every request is signed afresh).
    pub fn new(ttl: Duration) -> Self {
        OcspCache {
            map: Mutex::new(HashMap::new()),
            ttl,
            spread: std::collections::hash_map::RandomState::new(),
            puts: AtomicU64::new(0),
        }
    }

    pub fn get(&self, req: &[u8]) -> Option<Vec<u8>> {
        let m = self.map.lock().ok()?;
        let (resp, until) = m.get(req)?;
        (Instant::now() < *until).then(|| resp.clone())
    }

    pub fn put(&self, req: Vec<u8>, resp: Vec<u8>) {
        if self.ttl.is_zero() {
            return;
        }
        let until = Instant::now() + self.lifetime(&req);
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= OCSP_CACHE_MAX {
                m.clear();
            }
            m.insert(req, (resp, until));
        }
    }

    /// A lifetime in `[ttl/2, ttl]`, different per request and per insertion (a hash of both
    /// under this process's random key), so entries made together do not expire together.
    fn lifetime(&self, req: &[u8]) -> Duration {
        use std::hash::BuildHasher;
        let n = self.puts.fetch_add(1, Ordering::Relaxed);
        let h = self.spread.hash_one((req, n));
        let half = self.ttl / 2;
        // `h / u64::MAX` of the other half; u128 keeps the product exact.
        let extra = (half.as_nanos() * u128::from(h) / u128::from(u64::MAX)) as u64;
        half + Duration::from_nanos(extra)
    }

    pub fn clear(&self) {
        if let Ok(mut m) = self.map.lock() {
            m.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crl_reissue_key_ignores_order_and_tells_sets_apart() {
        let s = |h: &str| h.parse::<medsec_core::CertSerial>().unwrap();
        let (a, b, c) = (s("0a11"), s("0b22"), s("0c33"));
        let k = crl_reissue_key(&[a.clone(), b.clone()]);
        assert_eq!(k, crl_reissue_key(&[b.clone(), a.clone()]));
        assert_ne!(k, crl_reissue_key(&[a.clone(), b, c]));
        assert_ne!(k, crl_reissue_key(&[a]));
    }

    #[test]
    fn ocsp_cache_lifetimes_stay_within_ttl_and_spread_out() {
        let ttl = Duration::from_secs(60);
        let c = OcspCache::new(ttl);
        let lives: Vec<Duration> = (0..2000u32).map(|i| c.lifetime(&i.to_be_bytes())).collect();
        assert!(lives.iter().all(|l| *l >= ttl / 2 && *l <= ttl));
        // Entries made in the same instant must not share a deadline: over 2,000 of them, every
        // 3-second slice of the 30-second window holds some and none holds a third of them.
        let mut slices = [0u32; 10];
        for l in &lives {
            let i = ((l.as_secs_f64() - 30.0) / 3.0).floor() as usize;
            slices[i.min(9)] += 1;
        }
        assert!(slices.iter().all(|n| *n > 0 && *n < 2000 / 3), "{slices:?}");
        // The same request put again gets a new lifetime, so a hot key does not settle into
        // a fixed phase with the others.
        let again: Vec<Duration> = (0..50).map(|_| c.lifetime(b"same")).collect();
        assert!(again.iter().any(|l| *l != again[0]));
    }

    #[test]
    fn ocsp_cache_serves_until_the_deadline_and_zero_ttl_turns_it_off() {
        let c = OcspCache::new(Duration::from_secs(60));
        c.put(b"req".to_vec(), b"resp".to_vec());
        assert_eq!(c.get(b"req").as_deref(), Some(&b"resp"[..]));
        assert_eq!(c.get(b"other"), None);
        c.clear();
        assert_eq!(c.get(b"req"), None);

        let short = OcspCache::new(Duration::from_millis(2));
        short.put(b"req".to_vec(), b"resp".to_vec());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(short.get(b"req"), None);

        let off = OcspCache::new(Duration::ZERO);
        off.put(b"req".to_vec(), b"resp".to_vec());
        assert_eq!(off.get(b"req"), None);
    }
}
