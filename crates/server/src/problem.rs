//! RFC 9457 problem details: every error a client gets is `application/problem+json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medsec_ca::CaError;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(skip)]
    pub status: StatusCode,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: String,
    pub detail: String,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            title: status.canonical_reason().unwrap_or("error").to_owned(),
            status,
            kind,
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "about:blank", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNAUTHORIZED, "about:blank", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, "about:blank", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "about:blank", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::CONFLICT, "about:blank", detail)
    }

    /// A 500 whose detail stays in the log: internals are not the client's business.
    pub fn internal(area: &str, e: &dyn std::fmt::Display) -> Self {
        tracing::error!("{area}: {e}");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "about:blank",
            "internal error; see the server log",
        )
    }

    /// 503 for a part of the server that is not configured.
    pub fn unavailable(what: &str) -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "about:blank",
            format!("{what} is not configured on this server"),
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status;
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut r = (status, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"medsec-est\""),
            );
        }
        r
    }
}

/// The HTTP face of a CA error: client mistakes are 4xx with the CA's message, anything else
/// is a 500 whose detail stays in the log.
impl From<CaError> for Problem {
    fn from(e: CaError) -> Self {
        use CaError::*;
        match &e {
            Csr(_) | KeyNotAllowed { .. } | Invalid(_) => Problem::bad_request(e.to_string()),
            TokenRejected | TokenWrongProfile { .. } => Problem::unauthorized(e.to_string()),
            DeviceRetired(_) | CertRevoked { .. } | CertExpired(_) => {
                Problem::forbidden(e.to_string())
            }
            ProfileNotFound(_) | CertNotFound(_) | DeviceNotFound(_) | CaNotFound(_) => {
                Problem::new(StatusCode::NOT_FOUND, "about:blank", e.to_string())
            }
            _ => {
                tracing::error!("internal error: {e}");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "about:blank",
                    "internal error; see the server log",
                )
            }
        }
    }
}
