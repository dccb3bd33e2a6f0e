//! Liveness (`/healthz`), readiness (`/readyz`) and the Prometheus exposition (`/metrics`).
//!
//! Liveness says only that the process serves HTTP, so an orchestrator restarts it when it
//! does not; readiness says whether this replica can do its job now (the store answers, an
//! issuing CA key is unlocked), so a load balancer sends enrollments elsewhere until it can.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use medsec_ca::{CaRole, CaStore};

use crate::problem::Problem;
use crate::state::AppState;

/// How long the store may take to answer the readiness query.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed key load, probes report the remembered failure for this long instead of
/// running the key's KDF (or a token login) again on every probe.
const KEY_RETRY: Duration = Duration::from_secs(10);

/// `/healthz` and `/readyz`, on every listener that has them.
pub fn probes<S: CaStore + 'static>() -> Router<Arc<AppState<S>>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz::<S>))
}

/// `/metrics`, mounted on the plain listener unless turned off in the configuration.
pub fn metrics<S: CaStore + 'static>() -> Router<Arc<AppState<S>>> {
    Router::new().route("/metrics", get(metrics_text::<S>))
}

async fn metrics_text<S: CaStore>(State(st): State<Arc<AppState<S>>>) -> Response {
    let pool = st.pool_stats.as_ref().map(|f| f());
    let mut r = st.metrics.render(pool).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    r
}

fn not_ready(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "about:blank", detail)
}

async fn readyz<S: CaStore>(State(st): State<Arc<AppState<S>>>) -> Result<&'static str, Problem> {
    // The store: one cheap read every back end has (a handful of CA rows).
    let cas = match tokio::time::timeout(STORE_TIMEOUT, st.ca.list_cas()).await {
        Ok(Ok(cas)) => cas,
        Ok(Err(e)) => {
            tracing::warn!("readiness: the store refused a query: {e}");
            return Err(not_ready("the database does not answer queries"));
        }
        Err(_) => {
            return Err(not_ready(format!(
                "the database did not answer within {} s",
                STORE_TIMEOUT.as_secs()
            )));
        }
    };
    let issuing: Vec<_> = cas
        .iter()
        .filter(|c| c.role == CaRole::Issuing && c.key_ref.is_some() && c.revocation.is_none())
        .collect();
    if issuing.is_empty() {
        return Err(not_ready(
            "no unrevoked issuing CA with a signing key: run `medsec ca init` or `medsec ca add-issuing`",
        ));
    }
    let recent_failure = st
        .key_failure
        .lock()
        .ok()
        .and_then(|f| f.clone())
        .filter(|(at, _)| at.elapsed() < KEY_RETRY);
    if let Some((_, why)) = recent_failure {
        return Err(not_ready(why));
    }
    // Loaded keys stay cached in the CA, so after the first success this costs a map lookup.
    let mut failed = Vec::new();
    for c in &issuing {
        match st.ca.ensure_key_loaded(&c.name).await {
            Ok(()) => {
                if let Ok(mut f) = st.key_failure.lock() {
                    *f = None;
                }
                return Ok("ready");
            }
            Err(e) => {
                // The reason (a path, a token error) stays in the log: probes are unauthenticated.
                tracing::warn!(
                    "readiness: the key of issuing CA {} cannot be loaded: {e}",
                    c.name
                );
                failed.push(c.name.to_string());
            }
        }
    }
    let why = format!(
        "no issuing CA key could be loaded ({}); see the server log",
        failed.join(", ")
    );
    if let Ok(mut f) = st.key_failure.lock() {
        *f = Some((Instant::now(), why.clone()));
    }
    Err(not_ready(why))
}
