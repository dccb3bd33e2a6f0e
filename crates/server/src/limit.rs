//! Per-client rate limiting for enrollment: a token bucket per source IP address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Refill rate and burst per client address. Enrollment is rare per device; a burst allows a
/// gateway that enrolls a batch of devices behind one address.
pub struct RateLimiter {
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
    per_second: f64,
    burst: f64,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::new(50.0, 200.0)
    }
}

impl RateLimiter {
    pub fn new(per_second: f64, burst: f64) -> Self {
        RateLimiter {
            buckets: Mutex::new(HashMap::new()),
            per_second,
            burst,
        }
    }

    /// Takes one token for `ip`; false when the client must slow down.
    pub fn allow(&self, ip: IpAddr) -> bool {
        let Ok(mut m) = self.buckets.lock() else {
            return false;
        };
        let now = Instant::now();
        // Bound memory under address-spraying: forget idle clients when the map grows.
        if m.len() > 100_000 {
            m.retain(|_, (tokens, at)| {
                *tokens < self.burst || now.duration_since(*at).as_secs() < 60
            });
        }
        let (tokens, at) = m.entry(ip).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Every request on the HTTPS listener must finish within this time.
const REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

pub async fn deadline(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(REQUEST_DEADLINE, next.run(req)).await {
        Ok(r) => r,
        Err(_) => crate::problem::Problem::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "about:blank",
            "the request took too long",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refuse() {
        let l = RateLimiter::new(0.0, 3.0);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(l.allow(ip) && l.allow(ip) && l.allow(ip));
        assert!(!l.allow(ip));
        assert!(l.allow("127.0.0.2".parse().unwrap()));
    }
}
