//! Security headers on every response of the two TLS listeners (EST/API/dashboard and the
//! device gateway), including errors and unknown paths: what an operator's scanner
//! (`testssl.sh --headers`, crates/medsec/tests/testssl.rs) looks for. A header a route already
//! set is kept, so the dashboard's stricter policy (`ui::headers`: full CSP, `no-store`) wins.
//!
//! The CSP here only forbids framing: documents served by the API (the documentation set's
//! HTML with its inline stylesheet) must still render, and JSON needs no more.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// The headers every TLS response carries unless the route set its own.
pub const BASELINE: [(&str, &str); 5] = [
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("content-security-policy", "frame-ancestors 'none'"),
    ("referrer-policy", "no-referrer"),
];

/// The middleware (outermost layer of the HTTPS and device routers).
pub async fn baseline(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    for (k, v) in BASELINE {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    }
    res
}
