//! The network face of medsec: EST enrollment (RFC 7030), an OCSP responder (RFC 6960), CRL
//! distribution, and the mTLS device gateway, over axum and rustls.
//!
//! This is the only crate that knows HTTP. It holds no policy of its own: every decision
//! (who may enroll, what a certificate contains, whether a certificate is good) is the CA's;
//! this crate parses, bounds and routes requests, and maps domain errors to HTTP answers.

mod accept;
mod advisory_api;
mod api;
mod cluster;
mod docs_api;
mod est;
mod gateway;
mod headers;
mod health;
mod inventory_api;
mod limit;
mod metrics;
mod openapi;
mod pki;
mod postmarket_api;
mod problem;
mod risk_api;
mod state;
mod syslog;
mod tls;
mod ui;
mod updates_api;

use std::net::SocketAddr;
use std::sync::Arc;

pub use advisory_api::{
    AdvisoryRequest, author as author_advisory, create as create_advisory, load as load_advisory,
    parse_status as parse_advisory_status, parse_tlp, provider_files, publisher as csaf_publisher,
    revise as revise_advisory,
};
pub use docs_api::{DocSources, docs_inputs};
pub use metrics::{PoolStats, PoolStatsFn};
pub use postmarket_api::{PostmarketSettings, kev_listed, report_context};
pub use problem::Problem;
pub use risk_api::risk_inputs;
pub use state::{AppState, AuditRow, AuditView, RevocationWatch, crl_reissue_key};
pub use tls::{ServerCert, ServerIdentity, device_tls_config, est_tls_config};
pub use updates_api::check_tags;

/// The request bodies the REST handlers deserialize and the EST body decoder, public only so
/// that `medsec-fuzz` can feed them the bytes a client could send. The checks each handler
/// applies after deserializing stay in the handler (the fuzz targets repeat them).
pub mod request_bodies {
    pub use crate::advisory_api::{AdvisoryRequest, ReviseBody};
    pub use crate::api::{IssueBody, RevokeBody, TokenBody};
    pub use crate::est::decode_csr_body;
    pub use crate::inventory_api::{FirmwareBody, FirmwareReport, MatchBody, TriageBody};
    pub use crate::postmarket_api::{
        ActionBody, DisclosureBody, LinksBody, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, OpenBody,
        OwnerBody, PurgeBody, ReportLinksBody, ReportStatusBody, ReportabilityBody,
        StatusBody as IncidentStatusBody,
    };
    pub use crate::risk_api::SignOffBody;
    pub use crate::updates_api::{RolloutBody, StatusBody as UpdateStatusBody, TagsBody};
}

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error("listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error(transparent)]
    Ca(#[from] medsec_ca::CaError),
}

/// Where the listeners go.
#[derive(Debug, Clone)]
pub struct Listeners {
    /// Plain HTTP: CRLs and OCSP, which relying parties fetch without TLS (RFC 5280, 6960).
    pub http: SocketAddr,
    /// HTTPS for people and machines: EST and the API. Client certificates are optional here
    /// (EST re-enrollment and IDevID bootstrap present one).
    pub https: SocketAddr,
    /// HTTPS with mandatory client certificates: the device gateway.
    pub device: SocketAddr,
    /// Syslog over TLS (RFC 5425) with mandatory client certificates, for gateways; off
    /// when `None`.
    pub syslog: Option<SocketAddr>,
}

/// Bound listeners, so callers (and tests) learn the real ports before serving.
pub struct Bound {
    http: tokio::net::TcpListener,
    https: tokio::net::TcpListener,
    device: tokio::net::TcpListener,
    syslog: Option<tokio::net::TcpListener>,
}

impl Bound {
    pub async fn bind(l: &Listeners) -> Result<Self, ServerError> {
        let b = |addr: SocketAddr| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind { addr, source })
        };
        Ok(Bound {
            http: b(l.http).await?,
            https: b(l.https).await?,
            device: b(l.device).await?,
            syslog: match l.syslog {
                Some(a) => Some(b(a).await?),
                None => None,
            },
        })
    }

    /// The actual addresses (port 0 in the request becomes a real port).
    pub fn addrs(&self) -> Listeners {
        let a = |l: &tokio::net::TcpListener| {
            l.local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
        };
        Listeners {
            http: a(&self.http),
            https: a(&self.https),
            device: a(&self.device),
            syslog: self.syslog.as_ref().map(a),
        }
    }
}

/// Periodic work: revoke certificates whose rekey overlap has ended, reissue CRLs before their
/// nextUpdate even when nobody fetches them, apply the event retention, forget old job records.
/// Each job is claimed per period (`cluster::once`), so N replicas run it once between them.
async fn jobs<S: medsec_ca::CaStore + 'static>(state: Arc<AppState<S>>) {
    use medsec_core::period_start;
    loop {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let every = i64::try_from(state.jobs_interval.as_secs()).unwrap_or(30);
        let period = period_start(now, every);
        let st = &state;
        if let Some(ok) = cluster::once(st, "supersession", period, || async move {
            match st.ca.process_due_supersessions(&st.actor).await {
                Ok(v) if !v.is_empty() => {
                    st.revocation_changed().await;
                    true
                }
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!("supersession sweep failed: {e}");
                    false
                }
            }
        })
        .await
        {
            state.metrics.job_run(metrics::Job::Supersession, ok);
        }
        if let Some(ok) =
            cluster::once(st, "crl-refresh", period, || pki::refresh_due_crls(st)).await
        {
            state.metrics.job_run(metrics::Job::CrlRefresh, ok);
        }
        // The hour is the period; within it, the in-process clock in `purge_events` still
        // keeps a single process to one purge an hour.
        if state.postmarket_settings.retention_days.is_some()
            && let Some(ok) = cluster::once(st, "event-purge", period_start(now, 3600), || async {
                purge_events(st).await.unwrap_or(true)
            })
            .await
        {
            state.metrics.job_run(metrics::Job::EventPurge, ok);
        }
        if let Some(leases) = state.leases.as_deref() {
            let _ = cluster::once(st, "job-runs-prune", period_start(now, 86_400), || async {
                leases.prune_runs(now - 7 * 86_400).await.is_ok()
            })
            .await;
        }
        tokio::time::sleep(state.jobs_interval).await;
    }
}

/// Applies the event retention setting at most once an hour; whether it succeeded, or `None`
/// when it was not due (or retention is off).
async fn purge_events<S>(state: &AppState<S>) -> Option<bool> {
    let (Some(svc), Some(days)) = (
        state.postmarket.as_deref(),
        state.postmarket_settings.retention_days,
    ) else {
        return None;
    };
    let now = time::OffsetDateTime::now_utc();
    {
        let mut last = state.last_purge.lock().ok()?;
        if last.is_some_and(|l| now - l < time::Duration::hours(1)) {
            return None;
        }
        *last = Some(now);
    }
    match svc
        .purge_events(time::Duration::days(i64::from(days)), &state.actor, now)
        .await
    {
        Ok(0) => Some(true),
        Ok(n) => {
            tracing::info!("purged {n} device events past the {days}-day retention");
            Some(true)
        }
        Err(e) => {
            tracing::warn!("event retention purge failed: {e}");
            Some(false)
        }
    }
}

/// The HTTPS listener's application (EST, the REST API, the dashboard) without its TLS
/// acceptor: what `serve` runs behind TLS, for in-process measurement of handler time.
pub fn https_app<S: medsec_ca::CaStore + 'static>(state: Arc<AppState<S>>) -> axum::Router {
    est::router(state)
}

/// Serves until the process ends or a listener fails.
pub async fn serve<S: medsec_ca::CaStore + 'static>(
    bound: Bound,
    state: Arc<AppState<S>>,
    identity: ServerIdentity,
) -> Result<(), ServerError> {
    let cert = ServerCert::new(&identity)?;
    let est_cfg = Arc::new(est_tls_config(&state, &cert).await?);
    let dev_cfg = Arc::new(device_tls_config(&state, &cert).await?);
    tokio::spawn(tls::renew_server_cert(
        state.clone(),
        cert,
        identity,
        state.server_cert_check,
    ));
    let plain = pki::router(state.clone());
    let https = est::router(state.clone());
    let device = gateway::router(state.clone());
    state.watch.clone().spawn(state.clone());
    if let Some(rx) = state.revoked_use_rx.lock().ok().and_then(|mut r| r.take()) {
        tokio::spawn(postmarket_api::observe_revoked_use(state.clone(), rx));
    }
    tokio::spawn(jobs(state.clone()));
    // Without TCP_NODELAY a streamed answer (a TUF image, a large CRL) waits on the client's
    // delayed ACK between its header and body writes: 40 ms per request on Linux.
    use axum::serve::ListenerExt;
    let http = bound.http.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let h = tokio::spawn(async move { axum::serve(http, plain).await });
    let e = tokio::spawn(accept::serve_tls(bound.https, est_cfg, https));
    let d = tokio::spawn(accept::serve_tls(bound.device, dev_cfg.clone(), device));
    if let Some(l) = bound.syslog {
        tokio::spawn(syslog::serve(l, dev_cfg, state.clone()));
    }
    tokio::select! {
        r = h => tracing::error!("HTTP listener stopped: {r:?}"),
        r = e => tracing::error!("HTTPS listener stopped: {r:?}"),
        r = d => tracing::error!("device listener stopped: {r:?}"),
    }
    Ok(())
}
