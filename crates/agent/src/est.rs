//! EST client operations (RFC 7030): `cacerts`, `simpleenroll`, `simplereenroll`.
//!
//! Bodies are base64 DER both ways; the server's line breaks are tolerated. Errors come back as
//! RFC 9457 problem details, whose `detail` is shown to the user, after stripping anything that
//! could disturb a terminal (the text comes from the network).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hyper::Method;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName};
use medsec_core::{DeviceSerial, Name};

use crate::AgentError;
use crate::transport::{Endpoint, Reply};

fn path(label: Option<&Name>, op: &str) -> String {
    match label {
        Some(l) => format!("/.well-known/est/{}/{op}", l.as_str()),
        None => format!("/.well-known/est/{op}"),
    }
}

/// The CA certificates (issuing first, as the server sends them).
pub(crate) async fn cacerts(
    ep: &Endpoint,
    label: Option<&Name>,
) -> Result<Vec<Vec<u8>>, AgentError> {
    const OP: &str = "cacerts";
    let r = ep
        .request(
            Method::GET,
            &path(label, OP),
            &[(ACCEPT, "application/pkcs7-mime".into())],
            Vec::new(),
        )
        .await?;
    certs_from(OP, r)
}

/// First enrollment with a one-time token (HTTP Basic `serial:token`).
pub(crate) async fn simpleenroll(
    ep: &Endpoint,
    label: Option<&Name>,
    csr_der: &[u8],
    serial: &DeviceSerial,
    token: &str,
) -> Result<Vec<Vec<u8>>, AgentError> {
    const OP: &str = "simpleenroll";
    let auth = format!("Basic {}", B64.encode(format!("{serial}:{token}")));
    let r = post_csr(ep, label, OP, csr_der, Some((AUTHORIZATION, auth))).await?;
    certs_from(OP, r)
}

/// Re-enrollment; the endpoint's TLS configuration carries the current certificate.
pub(crate) async fn simplereenroll(
    ep: &Endpoint,
    label: Option<&Name>,
    csr_der: &[u8],
) -> Result<Vec<Vec<u8>>, AgentError> {
    const OP: &str = "simplereenroll";
    let r = post_csr(ep, label, OP, csr_der, None).await?;
    certs_from(OP, r)
}

async fn post_csr(
    ep: &Endpoint,
    label: Option<&Name>,
    op: &str,
    csr_der: &[u8],
    auth: Option<(HeaderName, String)>,
) -> Result<Reply, AgentError> {
    let mut headers = vec![
        (CONTENT_TYPE, "application/pkcs10".to_owned()),
        (ACCEPT, "application/pkcs7-mime".to_owned()),
        (
            HeaderName::from_static("content-transfer-encoding"),
            "base64".to_owned(),
        ),
    ];
    headers.extend(auth);
    ep.request(
        Method::POST,
        &path(label, op),
        &headers,
        B64.encode(csr_der).into_bytes(),
    )
    .await
}

/// The certificates of a successful reply, or the server's refusal.
fn certs_from(op: &'static str, r: Reply) -> Result<Vec<Vec<u8>>, AgentError> {
    if r.status != 200 {
        return Err(AgentError::Refused {
            operation: op,
            status: r.status,
            detail: problem_detail(&r),
        });
    }
    let bad = |reason: String| AgentError::BadResponse {
        operation: op,
        reason,
    };
    if !r.content_type.starts_with("application/pkcs7-mime") {
        return Err(bad(format!(
            "Content-Type is {:?}, expected application/pkcs7-mime",
            printable(&r.content_type, 80)
        )));
    }
    let cleaned: Vec<u8> = r
        .body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let der = B64
        .decode(&cleaned)
        .map_err(|e| bad(format!("body is not base64: {e}")))?;
    let certs = medsec_ca::pkcs7::parse_certs_only(&der)
        .map_err(|e| bad(format!("body is not a PKCS#7 certs-only message: {e}")))?;
    if certs.is_empty() {
        return Err(bad("the PKCS#7 message holds no certificate".into()));
    }
    Ok(certs)
}

/// The human part of an error reply: problem+json `detail` (or `title`), else the text.
fn problem_detail(r: &Reply) -> String {
    let from_json = serde_json::from_slice::<serde_json::Value>(&r.body)
        .ok()
        .and_then(|v| {
            v.get("detail")
                .or_else(|| v.get("title"))
                .and_then(|d| d.as_str())
                .map(str::to_owned)
        });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(&r.body).into_owned());
    let text = printable(text.trim(), 500);
    if text.is_empty() {
        "no detail given".into()
    } else {
        text
    }
}

/// At most `max` characters, control characters replaced: server text goes to a terminal.
fn printable(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, ct: &str, body: &[u8]) -> Reply {
        Reply {
            status,
            content_type: ct.into(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn paths_with_and_without_label() {
        assert_eq!(path(None, "cacerts"), "/.well-known/est/cacerts");
        let l = Name::parse("pump").unwrap();
        assert_eq!(
            path(Some(&l), "simpleenroll"),
            "/.well-known/est/pump/simpleenroll"
        );
    }

    #[test]
    fn refusals_carry_the_problem_detail() {
        let r = reply(
            401,
            "application/problem+json",
            br#"{"type":"about:blank","title":"Unauthorized","detail":"enrollment token is unknown, expired or already used"}"#,
        );
        let e = certs_from("simpleenroll", r).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("HTTP 401"), "{s}");
        assert!(s.contains("already used"), "{s}");
    }

    #[test]
    fn terminal_escapes_from_the_server_are_neutralised() {
        let r = reply(400, "text/plain", b"bad\x1b[31m thing\n");
        let AgentError::Refused { detail, .. } = certs_from("cacerts", r).unwrap_err() else {
            panic!("expected Refused");
        };
        assert!(!detail.contains('\x1b'), "{detail:?}");
        assert_eq!(printable(&"x".repeat(10), 4), "xxxx…");
    }

    #[test]
    fn pkcs7_with_line_breaks_is_read() {
        let kp = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".into()])
            .unwrap()
            .self_signed(&kp)
            .unwrap();
        let p7 = medsec_ca::pkcs7::certs_only(&[cert.der()]).unwrap();
        let b = B64.encode(&p7);
        let wrapped: Vec<u8> = b
            .as_bytes()
            .chunks(64)
            .flat_map(|c| c.iter().copied().chain(*b"\r\n"))
            .collect();
        let got = certs_from("cacerts", reply(200, "application/pkcs7-mime", &wrapped)).unwrap();
        assert_eq!(got, vec![cert.der().to_vec()]);
    }

    #[test]
    fn wrong_content_or_type_is_a_bad_response() {
        let e = certs_from("cacerts", reply(200, "text/html", b"<html>")).unwrap_err();
        assert!(matches!(e, AgentError::BadResponse { .. }));
        let e = certs_from("cacerts", reply(200, "application/pkcs7-mime", b"!!!")).unwrap_err();
        assert!(matches!(e, AgentError::BadResponse { .. }));
        let e = certs_from("cacerts", reply(200, "application/pkcs7-mime", b"AAAA")).unwrap_err();
        assert!(matches!(e, AgentError::BadResponse { .. }));
    }
}
