//! Operational metrics in the Prometheus text exposition format 0.0.4, served at `/metrics`.
//!
//! A deliberately small registry instead of a metrics crate: counters are atomics, histograms
//! have fixed buckets, and every label value comes from a closed set (an enum below, or an
//! HTTP status code), so the number of series is bounded whatever clients send, and nothing
//! from a request, a certificate or a credential can reach the output.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The content type Prometheus expects for the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A label whose values form a closed set: the registry preallocates one series per value.
pub trait Label: Copy + 'static {
    /// Every value, in output order.
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
    fn index(self) -> usize;
}

/// How a certificate came to be issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueKind {
    /// EST `simpleenroll` (token, IDevID or an open profile).
    Enroll,
    /// EST `simplereenroll` (renewal or rekey with the current certificate).
    Reenroll,
    /// `POST /api/v1/certificates` by an operator.
    Issue,
}

impl Label for IssueKind {
    const ALL: &'static [Self] = &[IssueKind::Enroll, IssueKind::Reenroll, IssueKind::Issue];
    fn as_str(self) -> &'static str {
        match self {
            IssueKind::Enroll => "enroll",
            IssueKind::Reenroll => "reenroll",
            IssueKind::Issue => "issue",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// The EST operation a request named; anything else is `other` (the path segment is the
/// client's, so it never becomes a label value itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EstOp {
    Cacerts,
    Csrattrs,
    Simpleenroll,
    Simplereenroll,
    Other,
}

impl EstOp {
    pub fn from_path(op: &str) -> Self {
        match op {
            "cacerts" => EstOp::Cacerts,
            "csrattrs" => EstOp::Csrattrs,
            "simpleenroll" => EstOp::Simpleenroll,
            "simplereenroll" => EstOp::Simplereenroll,
            _ => EstOp::Other,
        }
    }
}

impl Label for EstOp {
    const ALL: &'static [Self] = &[
        EstOp::Cacerts,
        EstOp::Csrattrs,
        EstOp::Simpleenroll,
        EstOp::Simplereenroll,
        EstOp::Other,
    ];
    fn as_str(self) -> &'static str {
        match self {
            EstOp::Cacerts => "cacerts",
            EstOp::Csrattrs => "csrattrs",
            EstOp::Simpleenroll => "simpleenroll",
            EstOp::Simplereenroll => "simplereenroll",
            EstOp::Other => "other",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// What an OCSP request was answered. A request about several certificates counts as its
/// worst answer (revoked over unknown over good).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspResult {
    Good,
    Revoked,
    Unknown,
    /// `malformedRequest`, or not an OCSP request at all (bad base64, wrong content type).
    Malformed,
    /// `unauthorized`: the request names no CA this responder signs for.
    Unauthorized,
    /// `internalError` / `tryLater`, or a response this module cannot read.
    Error,
}

impl Label for OcspResult {
    const ALL: &'static [Self] = &[
        OcspResult::Good,
        OcspResult::Revoked,
        OcspResult::Unknown,
        OcspResult::Malformed,
        OcspResult::Unauthorized,
        OcspResult::Error,
    ];
    fn as_str(self) -> &'static str {
        match self {
            OcspResult::Good => "good",
            OcspResult::Revoked => "revoked",
            OcspResult::Unknown => "unknown",
            OcspResult::Malformed => "malformed",
            OcspResult::Unauthorized => "unauthorized",
            OcspResult::Error => "error",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// Which channel delivered device events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventChannel {
    /// `POST /device/v1/events` on the gateway.
    Device,
    /// Syslog over TLS.
    Syslog,
    /// Observed by the server itself (revoked certificates in handshakes).
    Server,
}

impl Label for EventChannel {
    const ALL: &'static [Self] = &[
        EventChannel::Device,
        EventChannel::Syslog,
        EventChannel::Server,
    ];
    fn as_str(self) -> &'static str {
        match self {
            EventChannel::Device => "device",
            EventChannel::Syslog => "syslog",
            EventChannel::Server => "server",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// The background jobs of `serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Revoking certificates whose rekey overlap has ended.
    Supersession,
    /// Reissuing CRLs at three quarters of their validity.
    CrlRefresh,
    /// Deleting device events past the retention horizon.
    EventPurge,
}

impl Label for Job {
    const ALL: &'static [Self] = &[Job::Supersession, Job::CrlRefresh, Job::EventPurge];
    fn as_str(self) -> &'static str {
        match self {
            Job::Supersession => "supersession",
            Job::CrlRefresh => "crl_refresh",
            Job::EventPurge => "event_purge",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Default)]
struct Counter(AtomicU64);

impl Counter {
    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One counter per value of `L`.
struct CounterVec<L: Label> {
    c: Box<[Counter]>,
    _l: std::marker::PhantomData<L>,
}

impl<L: Label> CounterVec<L> {
    fn new() -> Self {
        CounterVec {
            c: L::ALL.iter().map(|_| Counter::default()).collect(),
            _l: std::marker::PhantomData,
        }
    }
    fn add(&self, l: L, n: u64) {
        if let Some(c) = self.c.get(l.index()) {
            c.add(n);
        }
    }
    fn get(&self, l: L) -> u64 {
        self.c.get(l.index()).map_or(0, Counter::get)
    }
}

/// Counters by a closed label and an HTTP status code. Status codes are 100-999 by
/// construction (`http::StatusCode`), which keeps the map small; a mutex is cheaper here than
/// the TLS handshake and signature of any request counted.
#[derive(Default)]
struct ByCode(Mutex<BTreeMap<(usize, u16), u64>>);

impl ByCode {
    fn inc(&self, label: usize, code: u16) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry((label, code)).or_insert(0) += 1;
        }
    }
    fn snapshot(&self) -> Vec<((usize, u16), u64)> {
        self.0
            .lock()
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default()
    }
}

/// Upper bounds (seconds) of the latency buckets; `+Inf` is implied. From 1 ms (a cached OCSP
/// answer) to 10 s (an issuance waiting on a loaded database or a slow token).
const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A fixed-bucket histogram. Buckets are stored non-cumulatively and summed when rendered,
/// so `_count` always equals the `+Inf` bucket even while observations race a scrape.
struct Histogram {
    /// One slot per bound plus the overflow slot.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &[(&str, &str)]) {
        let mut cumulative = 0u64;
        let bounds = LATENCY_BUCKETS.iter().map(|b| format_float(*b));
        for (slot, le) in self.buckets.iter().zip(bounds.chain(["+Inf".to_owned()])) {
            cumulative += slot.load(Ordering::Relaxed);
            let mut l = labels.to_vec();
            l.push(("le", &le));
            sample(out, &format!("{name}_bucket"), &l, cumulative);
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        sample(out, &format!("{name}_sum"), labels, format_float(sum));
        sample(out, &format!("{name}_count"), labels, cumulative);
    }
}

/// The connection pool of the store, as the binary reports it (this crate does not know sqlx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open now (idle or in use).
    pub size: u32,
    /// Of those, idle.
    pub idle: u32,
    /// The pool's ceiling.
    pub max: u32,
}

/// Reads the pool's figures at scrape time.
pub type PoolStatsFn = std::sync::Arc<dyn Fn() -> PoolStats + Send + Sync>;

/// Every metric the server keeps.
pub struct Metrics {
    issued: CounterVec<IssueKind>,
    issue_seconds: Vec<Histogram>,
    est: ByCode,
    ocsp: CounterVec<OcspResult>,
    ocsp_cache_hits: Counter,
    ocsp_seconds: Histogram,
    crl: ByCode,
    events_stored: CounterVec<EventChannel>,
    events_duplicate: CounterVec<EventChannel>,
    event_batches: CounterVec<EventChannel>,
    job_ok: CounterVec<Job>,
    job_err: CounterVec<Job>,
    /// Unix seconds of each job's last success (0: never).
    job_last_ok: Vec<AtomicU64>,
    started: SystemTime,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            issued: CounterVec::new(),
            issue_seconds: IssueKind::ALL.iter().map(|_| Histogram::new()).collect(),
            est: ByCode::default(),
            ocsp: CounterVec::new(),
            ocsp_cache_hits: Counter::default(),
            ocsp_seconds: Histogram::new(),
            crl: ByCode::default(),
            events_stored: CounterVec::new(),
            events_duplicate: CounterVec::new(),
            event_batches: CounterVec::new(),
            job_ok: CounterVec::new(),
            job_err: CounterVec::new(),
            job_last_ok: Job::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            started: SystemTime::now(),
        }
    }
}

impl Metrics {
    /// A certificate was issued, `took` after the request reached the handler.
    pub fn issued(&self, kind: IssueKind, took: Duration) {
        self.issued.add(kind, 1);
        if let Some(h) = self.issue_seconds.get(kind.index()) {
            h.observe(took);
        }
    }

    pub fn est_request(&self, op: EstOp, status: u16) {
        self.est.inc(op.index(), status);
    }

    pub fn ocsp_request(&self, result: OcspResult, cache_hit: bool, took: Duration) {
        self.ocsp.add(result, 1);
        if cache_hit {
            self.ocsp_cache_hits.add(1);
        }
        self.ocsp_seconds.observe(took);
    }

    pub fn crl_fetch(&self, status: u16) {
        self.crl.inc(0, status);
    }

    pub fn events(&self, channel: EventChannel, stored: usize, duplicates: usize) {
        self.event_batches.add(channel, 1);
        self.events_stored.add(channel, stored as u64);
        self.events_duplicate.add(channel, duplicates as u64);
    }

    pub fn job_run(&self, job: Job, ok: bool) {
        if ok {
            self.job_ok.add(job, 1);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if let Some(t) = self.job_last_ok.get(job.index()) {
                t.store(now, Ordering::Relaxed);
            }
        } else {
            self.job_err.add(job, 1);
        }
    }

    /// The exposition: every family with HELP and TYPE, series in a stable order.
    pub fn render(&self, pool: Option<PoolStats>) -> String {
        let mut o = String::with_capacity(8 * 1024);

        family(
            &mut o,
            "medsec_build_info",
            "gauge",
            "Always 1; the version label names the running medsec.",
        );
        sample(
            &mut o,
            "medsec_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1,
        );

        let n = "medsec_certificates_issued_total";
        family(
            &mut o,
            n,
            "counter",
            "Certificates issued, by kind (enroll, reenroll: EST; issue: the admin API).",
        );
        for k in IssueKind::ALL {
            sample(&mut o, n, &[("kind", k.as_str())], self.issued.get(*k));
        }
        let n = "medsec_certificate_issuance_seconds";
        family(
            &mut o,
            n,
            "histogram",
            "Time from request to issued certificate, by kind (successful issuances only).",
        );
        for (k, h) in IssueKind::ALL.iter().zip(&self.issue_seconds) {
            h.render(&mut o, n, &[("kind", k.as_str())]);
        }

        let n = "medsec_est_requests_total";
        family(
            &mut o,
            n,
            "counter",
            "EST requests answered, by operation and HTTP status code.",
        );
        for ((op, code), v) in self.est.snapshot() {
            let op = EstOp::ALL.get(op).map_or("other", |o| o.as_str());
            sample(
                &mut o,
                n,
                &[("operation", op), ("code", &code.to_string())],
                v,
            );
        }

        let n = "medsec_ocsp_requests_total";
        family(
            &mut o,
            n,
            "counter",
            "OCSP requests, by answer (good, revoked, unknown, malformed, unauthorized, error).",
        );
        for r in OcspResult::ALL {
            sample(&mut o, n, &[("result", r.as_str())], self.ocsp.get(*r));
        }
        let n = "medsec_ocsp_cache_hits_total";
        family(
            &mut o,
            n,
            "counter",
            "OCSP requests answered from the response cache.",
        );
        sample(&mut o, n, &[], self.ocsp_cache_hits.get());
        let n = "medsec_ocsp_response_seconds";
        family(
            &mut o,
            n,
            "histogram",
            "Time to answer an OCSP request, cache hits included.",
        );
        self.ocsp_seconds.render(&mut o, n, &[]);

        let n = "medsec_crl_fetches_total";
        family(&mut o, n, "counter", "CRL downloads, by HTTP status code.");
        for ((_, code), v) in self.crl.snapshot() {
            sample(&mut o, n, &[("code", &code.to_string())], v);
        }

        for (n, help, c) in [
            (
                "medsec_device_events_stored_total",
                "Device security events stored, by channel.",
                &self.events_stored,
            ),
            (
                "medsec_device_events_duplicate_total",
                "Device security events skipped as replays of stored ones, by channel.",
                &self.events_duplicate,
            ),
            (
                "medsec_device_event_batches_total",
                "Device event batches ingested, by channel.",
                &self.event_batches,
            ),
        ] {
            family(&mut o, n, "counter", help);
            for ch in EventChannel::ALL {
                sample(&mut o, n, &[("channel", ch.as_str())], c.get(*ch));
            }
        }

        let n = "medsec_job_runs_total";
        family(
            &mut o,
            n,
            "counter",
            "Background job runs, by job and outcome (ok, error).",
        );
        for j in Job::ALL {
            let job = j.as_str();
            sample(
                &mut o,
                n,
                &[("job", job), ("outcome", "ok")],
                self.job_ok.get(*j),
            );
            sample(
                &mut o,
                n,
                &[("job", job), ("outcome", "error")],
                self.job_err.get(*j),
            );
        }
        let n = "medsec_job_last_success_timestamp_seconds";
        family(
            &mut o,
            n,
            "gauge",
            "Unix time of each job's last successful run (0: none yet).",
        );
        for (j, t) in Job::ALL.iter().zip(&self.job_last_ok) {
            sample(&mut o, n, &[("job", j.as_str())], t.load(Ordering::Relaxed));
        }

        if let Some(p) = pool {
            let n = "medsec_db_pool_connections";
            family(
                &mut o,
                n,
                "gauge",
                "Database connections open, by state (idle, in_use).",
            );
            sample(&mut o, n, &[("state", "idle")], p.idle);
            sample(
                &mut o,
                n,
                &[("state", "in_use")],
                p.size.saturating_sub(p.idle),
            );
            let n = "medsec_db_pool_max_connections";
            family(
                &mut o,
                n,
                "gauge",
                "The database pool's connection ceiling.",
            );
            sample(&mut o, n, &[], p.max);
        }

        self.render_process(&mut o);
        o
    }

    /// The standard `process_*` gauges, from /proc/self (absent where there is no procfs).
    fn render_process(&self, o: &mut String) {
        let start = self
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        family(
            o,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
        );
        sample(o, "process_start_time_seconds", &[], format_float(start));
        if let Some(rss) = resident_bytes() {
            family(
                o,
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
            );
            sample(o, "process_resident_memory_bytes", &[], rss);
        }
        if let Ok(d) = std::fs::read_dir("/proc/self/fd") {
            // The count includes the descriptor of this very listing, as client_golang's does.
            let n = d.count();
            family(
                o,
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
            );
            sample(o, "process_open_fds", &[], n);
        }
        if let Some(max) = max_fds() {
            family(
                o,
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors (soft limit).",
            );
            sample(o, "process_max_fds", &[], max);
        }
    }
}

/// `VmRSS` of /proc/self/status (kB) in bytes; needs no page-size lookup.
fn resident_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// The soft "Max open files" of /proc/self/limits; `None` when unlimited or unreadable.
fn max_fds() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Classifies a DER `OCSPResponse` by walking just enough of it: the response status, then
/// each `SingleResponse`'s certStatus tag. The response is our own, but a parse failure is
/// still an answer (`error`), never a panic.
pub fn classify_ocsp(der: &[u8]) -> OcspResult {
    classify(der).unwrap_or(OcspResult::Error)
}

fn classify(der: &[u8]) -> Option<OcspResult> {
    // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT .. }
    let (resp, _) = tlv(der, 0x30)?;
    let (status, rest) = tlv(resp, 0x0a)?;
    match status {
        [0] => {}
        [1] => return Some(OcspResult::Malformed),
        [6] => return Some(OcspResult::Unauthorized),
        _ => return Some(OcspResult::Error),
    }
    // ResponseBytes ::= SEQUENCE { responseType OID, response OCTET STRING }
    let (explicit, _) = tlv(rest, 0xa0)?;
    let (bytes, _) = tlv(explicit, 0x30)?;
    let (_, after_oid) = tlv(bytes, 0x06)?;
    let (basic_der, _) = tlv(after_oid, 0x04)?;
    // BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData, .. }
    let (basic, _) = tlv(basic_der, 0x30)?;
    let (tbs, _) = tlv(basic, 0x30)?;
    // ResponseData ::= SEQUENCE { version [0] EXPLICIT DEFAULT v1, responderID [1]|[2],
    //   producedAt GeneralizedTime, responses SEQUENCE OF SingleResponse, .. }
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = any_tlv(rest)?.1;
    }
    rest = any_tlv(rest)?.1; // responderID
    let (_, rest) = tlv(rest, 0x18)?; // producedAt
    let (mut responses, _) = tlv(rest, 0x30)?;
    let mut worst = None;
    while !responses.is_empty() {
        let (single, next) = tlv(responses, 0x30)?;
        responses = next;
        // SingleResponse ::= SEQUENCE { certID CertID, certStatus CHOICE {
        //   good [0] IMPLICIT NULL, revoked [1] IMPLICIT RevokedInfo, unknown [2] IMPLICIT .. }
        let (_, after_id) = tlv(single, 0x30)?;
        let r = match after_id.first()? {
            0x80 => OcspResult::Good,
            0xa1 => OcspResult::Revoked,
            0x82 => OcspResult::Unknown,
            _ => return None,
        };
        worst = Some(match (worst, r) {
            (Some(OcspResult::Revoked), _) | (_, OcspResult::Revoked) => OcspResult::Revoked,
            (Some(OcspResult::Unknown), _) | (_, OcspResult::Unknown) => OcspResult::Unknown,
            _ => r,
        });
    }
    worst
}

/// One DER TLV with the expected tag: (contents, rest).
fn tlv(b: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    (b.first()? == &tag).then_some(())?;
    any_tlv(b)
}

/// One DER TLV of any single-byte tag: (contents, rest). Definite lengths up to 4 bytes.
fn any_tlv(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let first = *b.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for byte in b.get(2..2 + n)? {
            len = (len << 8) | usize::from(*byte);
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((b.get(header..end)?, b.get(end..)?))
}

fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(o, "# TYPE {name} {kind}");
}

fn sample(o: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    o.push_str(name);
    if !labels.is_empty() {
        o.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(o, "{k}=\"{}\"", escape_label(v));
        }
        o.push('}');
    }
    let _ = writeln!(o, " {value}");
}

/// Label values escape backslash, double quote and line feed (format 0.0.4).
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// HELP text escapes backslash and line feed only.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Floats as Go's `strconv.ParseFloat` reads them; Rust's `Display` never uses exponents.
fn format_float(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if v.is_nan() {
        "NaN".to_owned()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A strict reader of the text format: every line is a HELP, a TYPE or a sample of the
    /// family last typed; names and label names match the spec's grammar; label values are
    /// properly escaped; values are floats; histogram buckets are cumulative and end in +Inf
    /// equal to `_count`. Returns (family, type, samples).
    type Labels = Vec<(String, String)>;
    type Sample = (String, Labels, f64);
    type Buckets = (Vec<(f64, f64)>, Option<f64>);

    pub(crate) fn parse_strict(text: &str) -> Vec<(String, String, Vec<Sample>)> {
        let name_ok = |n: &str| {
            let mut c = n.chars();
            c.next()
                .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
                && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
        };
        let label_ok =
            |n: &str| name_ok(n) && !n.contains(':') && !n.starts_with("__") && !n.is_empty();
        assert!(text.ends_with('\n'), "the exposition ends with a line feed");
        let mut fams: Vec<(String, String, Vec<Sample>)> = Vec::new();
        let mut helped: Option<String> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (n, _) = rest.split_once(' ').expect("HELP has text");
                assert!(name_ok(n), "{line}");
                assert!(fams.iter().all(|f| f.0 != n), "family {n} appears twice");
                helped = Some(n.to_owned());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (n, t) = rest.split_once(' ').expect("TYPE has a type");
                assert_eq!(helped.as_deref(), Some(n), "TYPE follows its HELP: {line}");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                    "{line}"
                );
                fams.push((n.to_owned(), t.to_owned(), Vec::new()));
            } else {
                assert!(!line.starts_with('#') && !line.is_empty(), "stray {line:?}");
                let (fam_name, fam_type, samples) = fams.last_mut().expect("sample before TYPE");
                let (name, rest) = match line.find('{') {
                    Some(i) => (&line[..i], &line[i..]),
                    None => line.split_at(line.find(' ').expect("value")),
                };
                let ok_name = match fam_type.as_str() {
                    "histogram" => [
                        format!("{fam_name}_bucket"),
                        format!("{fam_name}_sum"),
                        format!("{fam_name}_count"),
                    ]
                    .contains(&name.to_owned()),
                    _ => name == fam_name,
                };
                assert!(ok_name, "sample {name} outside its family {fam_name}");
                let mut labels = Vec::new();
                let mut rest = rest;
                if let Some(r) = rest.strip_prefix('{') {
                    let mut chars = r.char_indices().peekable();
                    let end;
                    loop {
                        let start = chars.peek().expect("label").0;
                        let mut key_end = start;
                        for (i, c) in chars.by_ref() {
                            if c == '=' {
                                key_end = i;
                                break;
                            }
                        }
                        let key = &r[start..key_end];
                        assert!(label_ok(key), "label name {key:?} in {line}");
                        assert_eq!(chars.next().map(|x| x.1), Some('"'), "{line}");
                        let mut val = String::new();
                        loop {
                            match chars.next().expect("closing quote").1 {
                                '\\' => match chars.next().expect("escape").1 {
                                    '\\' => val.push('\\'),
                                    '"' => val.push('"'),
                                    'n' => val.push('\n'),
                                    c => panic!("bad escape \\{c} in {line}"),
                                },
                                '"' => break,
                                '\n' => panic!("raw newline"),
                                c => val.push(c),
                            }
                        }
                        labels.push((key.to_owned(), val));
                        match chars.next().expect("after label") {
                            (_, ',') => continue,
                            (i, '}') => {
                                end = i + 1;
                                break;
                            }
                            (_, c) => panic!("unexpected {c:?} in {line}"),
                        }
                    }
                    rest = &r[end..];
                }
                let value = rest.strip_prefix(' ').expect("one space before the value");
                assert!(!value.contains(' '), "no timestamps: {line}");
                let v: f64 = match value {
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    "NaN" => f64::NAN,
                    _ => value.parse().unwrap_or_else(|_| panic!("value in {line}")),
                };
                samples.push((name.to_owned(), labels, v));
            }
        }
        for (name, t, samples) in &fams {
            if t == "counter" {
                assert!(samples.iter().all(|s| s.2 >= 0.0), "{name} negative");
            }
            if t != "histogram" {
                continue;
            }
            // Group by the labels other than `le`, check cumulative buckets and +Inf == count.
            // Per series: (le, cumulative count) pairs and `_count`.
            let mut groups: BTreeMap<Labels, Buckets> = BTreeMap::new();
            for (n, l, v) in samples {
                let key: Vec<_> = l.iter().filter(|(k, _)| k != "le").cloned().collect();
                let g = groups.entry(key).or_default();
                if n.ends_with("_bucket") {
                    let le = &l.iter().find(|(k, _)| k == "le").expect("le").1;
                    let le = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().expect("le")
                    };
                    g.0.push((le, *v));
                } else if n.ends_with("_count") {
                    g.1 = Some(*v);
                }
            }
            for (k, (buckets, count)) in groups {
                assert!(
                    buckets
                        .windows(2)
                        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                    "{name}{k:?} buckets"
                );
                let last = buckets.last().expect("buckets");
                assert!(last.0.is_infinite(), "{name} ends in +Inf");
                assert_eq!(Some(last.1), count, "{name}{k:?} +Inf == _count");
            }
        }
        fams
    }

    fn value(fams: &[(String, String, Vec<Sample>)], name: &str, labels: &[(&str, &str)]) -> f64 {
        fams.iter()
            .flat_map(|f| &f.2)
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.2)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }

    #[test]
    fn exposition_parses_strictly_and_counts() {
        let m = Metrics::default();
        m.issued(IssueKind::Enroll, Duration::from_millis(30));
        m.issued(IssueKind::Enroll, Duration::from_secs(20));
        m.est_request(EstOp::Simpleenroll, 200);
        m.est_request(EstOp::Simpleenroll, 401);
        m.est_request(EstOp::from_path("x\"y"), 404);
        m.ocsp_request(OcspResult::Good, false, Duration::from_micros(800));
        m.ocsp_request(OcspResult::Good, true, Duration::from_micros(10));
        m.crl_fetch(200);
        m.events(EventChannel::Device, 3, 1);
        m.job_run(Job::CrlRefresh, true);
        m.job_run(Job::Supersession, false);
        let text = m.render(Some(PoolStats {
            size: 3,
            idle: 2,
            max: 8,
        }));
        let f = parse_strict(&text);
        let v = |n: &str, l: &[(&str, &str)]| value(&f, n, l);
        assert_eq!(
            v("medsec_certificates_issued_total", &[("kind", "enroll")]),
            2.0
        );
        assert_eq!(
            v("medsec_certificates_issued_total", &[("kind", "issue")]),
            0.0
        );
        let h = "medsec_certificate_issuance_seconds";
        assert_eq!(
            v(
                &format!("{h}_bucket"),
                &[("kind", "enroll"), ("le", "0.05")]
            ),
            1.0
        );
        assert_eq!(
            v(&format!("{h}_bucket"), &[("kind", "enroll"), ("le", "10")]),
            1.0
        );
        assert_eq!(
            v(
                &format!("{h}_bucket"),
                &[("kind", "enroll"), ("le", "+Inf")]
            ),
            2.0
        );
        assert!((v(&format!("{h}_sum"), &[("kind", "enroll")]) - 20.03).abs() < 1e-9);
        let est = "medsec_est_requests_total";
        assert_eq!(
            v(est, &[("operation", "simpleenroll"), ("code", "401")]),
            1.0
        );
        assert_eq!(v(est, &[("operation", "other"), ("code", "404")]), 1.0);
        assert_eq!(v("medsec_ocsp_requests_total", &[("result", "good")]), 2.0);
        assert_eq!(v("medsec_ocsp_cache_hits_total", &[]), 1.0);
        assert_eq!(v("medsec_ocsp_response_seconds_count", &[]), 2.0);
        assert_eq!(v("medsec_crl_fetches_total", &[("code", "200")]), 1.0);
        assert_eq!(
            v(
                "medsec_device_events_duplicate_total",
                &[("channel", "device")]
            ),
            1.0
        );
        let jobs = "medsec_job_runs_total";
        assert_eq!(v(jobs, &[("job", "crl_refresh"), ("outcome", "ok")]), 1.0);
        assert_eq!(
            v(jobs, &[("job", "supersession"), ("outcome", "error")]),
            1.0
        );
        assert_eq!(v("medsec_db_pool_connections", &[("state", "in_use")]), 1.0);
        assert_eq!(v("medsec_db_pool_max_connections", &[]), 8.0);
        #[cfg(target_os = "linux")]
        {
            assert!(v("process_resident_memory_bytes", &[]) > 0.0);
            assert!(v("process_open_fds", &[]) > 0.0);
        }
        // No pool hook: no pool families, still valid.
        let f = parse_strict(&Metrics::default().render(None));
        assert!(f.iter().all(|x| !x.0.starts_with("medsec_db_pool")));
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(escape_help("a\\b\"c\nd"), "a\\\\b\"c\\nd");
        let mut o = String::new();
        family(&mut o, "x_total", "counter", "multi\nline \\ help");
        sample(&mut o, "x_total", &[("v", "q\"uote\\\nnl")], 1);
        let f = parse_strict(&o);
        assert_eq!(f[0].2[0].1[0].1, "q\"uote\\\nnl");
    }

    #[test]
    fn strict_parser_refuses_bad_text() {
        for bad in [
            "x 1\n",                                          // no TYPE
            "# HELP x h\n# TYPE x counter\nx{a=\"b} 1\n",     // unterminated
            "# HELP x h\n# TYPE x counter\nx{a=\"\\t\"} 1\n", // bad escape
            "# HELP x h\n# TYPE x counter\ny 1\n",            // outside its family
            "# HELP x h\n# TYPE x counter\nx one\n",          // not a number
            "# HELP x h\n# TYPE x histogram\nx_bucket{le=\"1\"} 2\nx_bucket{le=\"+Inf\"} 1\nx_count 1\n",
        ] {
            assert!(
                std::panic::catch_unwind(|| parse_strict(bad)).is_err(),
                "accepted {bad:?}"
            );
        }
    }

    #[test]
    fn ocsp_responses_are_classified() {
        use medsec_ca::OcspErrorStatus as S;
        let e = |s| classify_ocsp(&medsec_ca::ocsp_error_response(s));
        assert_eq!(e(S::MalformedRequest), OcspResult::Malformed);
        assert_eq!(e(S::Unauthorized), OcspResult::Unauthorized);
        assert_eq!(e(S::TryLater), OcspResult::Error);
        assert_eq!(classify_ocsp(b"\x30\x82\xff"), OcspResult::Error);
        assert_eq!(classify_ocsp(&[]), OcspResult::Error);
    }
}
