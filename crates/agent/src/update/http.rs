//! The TUF transport: tough fetches every metadata file and image through this, over the
//! agent's own hyper + rustls stack (no reqwest, no system roots, no fixed sleeps).
//!
//! Unlike `crate::transport`, which opens one connection per request, this keeps connections
//! alive: a TUF refresh is five or more requests in a row to the same host, and an image
//! download follows right after. A connection goes back to the pool only once its response
//! body has been read to the end, so a half-read (refused) body never poisons the next request.
//!
//! Bounds: connect and TLS handshake timeouts, a timeout for the response head and for every
//! pause between body chunks (an image may legitimately take minutes, a stalled peer may not),
//! and a hard cap on every body. tough applies its own, tighter per-file limits on top (the
//! length from signed metadata, or the configured `max_*_size`).

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_core::Stream;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HOST, HeaderValue, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tough::{Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

use crate::AgentError;
use crate::config::Timeouts;

/// Where a connection goes: scheme, host, port.
type Origin = (String, String, u16);

struct Idle {
    origin: Origin,
    sender: SendRequest<Empty<Bytes>>,
}

struct Inner {
    /// `None`: the repository is plain HTTP, and an `https` URL is refused.
    tls: Option<Arc<ClientConfig>>,
    timeouts: Timeouts,
    /// No body, metadata or image, may be larger than this.
    max_body: u64,
    idle: Mutex<Vec<Idle>>,
    /// Connections opened so far, for diagnostics and for the keep-alive test.
    opened: std::sync::atomic::AtomicU64,
}

/// tough's [`Transport`] over a shared, keep-alive HTTP/1.1 client. Clones share the pool.
#[derive(Clone)]
pub(crate) struct RepoTransport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RepoTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoTransport")
            .field("tls", &self.inner.tls.is_some())
            .field("max_body", &self.inner.max_body)
            .finish_non_exhaustive()
    }
}

/// A failure below tough, carried as the source of a [`TransportError`] so that
/// `update::tuf::classify` can tell a network problem from a verification failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct NetError(pub String);

impl RepoTransport {
    pub(crate) fn new(tls: Option<Arc<ClientConfig>>, timeouts: Timeouts, max_body: u64) -> Self {
        RepoTransport {
            inner: Arc::new(Inner {
                tls,
                timeouts,
                max_body,
                idle: Mutex::new(Vec::new()),
                opened: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    pub(crate) fn connections_opened(&self) -> u64 {
        self.inner.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn take_idle(&self, origin: &Origin) -> Option<SendRequest<Empty<Bytes>>> {
        let mut idle = self.inner.idle.lock().ok()?;
        while let Some(pos) = idle.iter().position(|i| &i.origin == origin) {
            let i = idle.swap_remove(pos);
            if !i.sender.is_closed() && i.sender.is_ready() {
                return Some(i.sender);
            }
        }
        None
    }

    async fn connect(
        &self,
        url: &Url,
        origin: &Origin,
    ) -> Result<SendRequest<Empty<Bytes>>, TransportError> {
        let t = self.inner.timeouts;
        let (scheme, host, port) = origin;
        let addr = format!("{host}:{port}");
        let net = |m: String| other(url, m);
        let tcp = tokio::time::timeout(t.connect, TcpStream::connect(&addr))
            .await
            .map_err(|_| net(format!("connecting to {addr} timed out")))?
            .map_err(|e| net(format!("cannot connect to {addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        self.inner
            .opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if scheme == "https" {
            let Some(tls) = &self.inner.tls else {
                return Err(TransportError::new(
                    TransportErrorKind::UnsupportedUrlScheme,
                    url,
                ));
            };
            let name = ServerName::try_from(host.clone())
                .map_err(|_| net(format!("{host:?} is not a valid server name")))?;
            let stream = tokio::time::timeout(
                t.handshake,
                TlsConnector::from(tls.clone()).connect(name, tcp),
            )
            .await
            .map_err(|_| net(format!("TLS handshake with {addr} timed out")))?
            .map_err(|e| net(format!("TLS with {addr} failed: {e}")))?;
            handshake(url, stream).await
        } else {
            handshake(url, tcp).await
        }
    }

    async fn fetch_inner(&self, url: Url) -> Result<TransportStream, TransportError> {
        let scheme = url.scheme().to_owned();
        if scheme != "http" && scheme != "https" {
            return Err(TransportError::new(
                TransportErrorKind::UnsupportedUrlScheme,
                url,
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| other(&url, "URL without a host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| other(&url, "URL without a port".into()))?;
        let origin: Origin = (scheme, host, port);
        let host_header = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };

        let t = self.inner.timeouts;
        // A pooled connection may have been closed by the server since; then one fresh retry.
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            let (mut sender, reused) = match self.take_idle(&origin) {
                Some(s) => (s, true),
                None => (self.connect(&url, &origin).await?, false),
            };
            let req = Request::get(&path)
                .header(
                    USER_AGENT,
                    concat!("medsec-agent/", env!("CARGO_PKG_VERSION")),
                )
                .header(
                    HOST,
                    HeaderValue::from_str(&host_header)
                        .map_err(|_| other(&url, "host is not a valid header".into()))?,
                )
                .body(Empty::<Bytes>::new())
                .map_err(|e| other(&url, e.to_string()))?;
            match tokio::time::timeout(t.request, sender.send_request(req)).await {
                Err(_) => return Err(other(&url, "no response in time".into())),
                Ok(Ok(resp)) => break (resp, sender),
                Ok(Err(e)) if reused && attempt == 1 => {
                    // A keep-alive race (the server closed the idle connection): retry once
                    // on a fresh one. A fresh connection failing is a real error.
                    let _ = e;
                    continue;
                }
                Ok(Err(e)) => return Err(other(&url, format!("HTTP exchange failed: {e}"))),
            }
        };
        let (resp, sender) = resp;
        match resp.status() {
            StatusCode::OK => {}
            // tough probes `N+1.root.json` and needs "not there" told apart from "failed".
            StatusCode::NOT_FOUND | StatusCode::GONE => {
                return Err(TransportError::new(TransportErrorKind::FileNotFound, url));
            }
            s => return Err(other(&url, format!("HTTP status {s}"))),
        }
        if let Some(len) = resp
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && len > self.inner.max_body
        {
            return Err(other(
                &url,
                format!(
                    "announced body of {len} bytes exceeds the limit of {}",
                    self.inner.max_body
                ),
            ));
        }

        // The body is pumped by a task into a bounded channel: the stream tough gets is then
        // `Send + Sync`, reading stops as soon as tough drops it (a refused file), and the
        // connection is pooled again only after a complete body.
        let (tx, rx) = mpsc::channel::<Result<Bytes, TransportError>>(4);
        let this = self.clone();
        let max_body = self.inner.max_body;
        let idle_timeout = t.request;
        tokio::spawn(async move {
            let mut body = resp.into_body();
            let mut total: u64 = 0;
            loop {
                let frame = match tokio::time::timeout(idle_timeout, body.frame()).await {
                    Err(_) => {
                        let _ = tx.send(Err(other(&url, "the body stalled".into()))).await;
                        return;
                    }
                    Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        let _ = tx
                            .send(Err(other(&url, format!("reading the body: {e}"))))
                            .await;
                        return;
                    }
                    Ok(Some(Ok(f))) => f,
                };
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                total = total.saturating_add(data.len() as u64);
                if total > max_body {
                    let _ = tx
                        .send(Err(other(
                            &url,
                            format!("body exceeds the limit of {max_body} bytes"),
                        )))
                        .await;
                    return;
                }
                if tx.send(Ok(data)).await.is_err() {
                    // tough stopped reading: the connection is dropped with the body.
                    return;
                }
            }
            if let Ok(mut idle) = this.inner.idle.lock() {
                idle.push(Idle {
                    origin: origin.clone(),
                    sender,
                });
            }
        });
        Ok(Box::pin(ChannelStream(rx)))
    }
}

async fn handshake<S>(url: &Url, io: S) -> Result<SendRequest<Empty<Bytes>>, TransportError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| other(url, format!("HTTP handshake failed: {e}")))?;
    // Ends by itself once every `SendRequest` for it is dropped (or the peer closes).
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn other(url: &Url, msg: String) -> TransportError {
    TransportError::new_with_cause(TransportErrorKind::Other, url, NetError(msg))
}

struct ChannelStream(mpsc::Receiver<Result<Bytes, TransportError>>);

impl Stream for ChannelStream {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

#[tough::async_trait]
impl Transport for RepoTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        self.fetch_inner(spec_target_url(url)).await
    }
}

/// tough's client asks for a consistent-snapshot target with a nested name at
/// `<targets>/<HASH>.<dir>/<file>`, while TUF 5.7.3 (python-tuf, tuf-js and our repository)
/// puts it at `<targets>/<dir>/<HASH>.<file>`. Rewrites the former into the latter; tough still
/// checks the length and hashes of what comes back.
fn spec_target_url(mut url: Url) -> Url {
    let segs: Vec<String> = url
        .path_segments()
        .map(|s| s.map(str::to_owned).collect())
        .unwrap_or_default();
    let Some(last) = segs.last().cloned() else {
        return url;
    };
    for (i, seg) in segs.iter().enumerate().take(segs.len().saturating_sub(1)) {
        if let Some((h, first)) = seg.split_once('.')
            && h.len() == 64
            && h.bytes().all(|b| b.is_ascii_hexdigit())
            && !first.is_empty()
        {
            let mut new: Vec<String> = segs[..i].to_vec();
            new.push(first.to_owned());
            new.extend(segs[i + 1..segs.len() - 1].iter().cloned());
            new.push(format!("{h}.{last}"));
            url.set_path(&format!("/{}", new.join("/")));
            return url;
        }
    }
    url
}

/// The TLS configuration for an `https` repository: server authentication against `roots` only.
pub(crate) fn repo_tls(roots: rustls::RootCertStore) -> Result<Arc<ClientConfig>, AgentError> {
    crate::transport::client_config(Arc::new(roots), None)
}

#[cfg(test)]
mod spec_path_tests {
    use super::*;

    #[test]
    fn nested_consistent_snapshot_targets_use_the_spec_path() {
        let h = "ab".repeat(32);
        let u = Url::parse(&format!("http://h/tuf/targets/{h}.pump-x2/pump-x2-2.1.bin")).unwrap();
        assert_eq!(
            spec_target_url(u).as_str(),
            format!("http://h/tuf/targets/pump-x2/{h}.pump-x2-2.1.bin")
        );
        // Flat names and metadata are left alone.
        for s in [
            format!("http://h/tuf/targets/{h}.flat.bin"),
            "http://h/tuf/metadata/3.snapshot.json".to_owned(),
        ] {
            let u = Url::parse(&s).unwrap();
            assert_eq!(spec_target_url(u.clone()), u);
        }
    }
}
