//! Syslog over TLS (RFC 5425) from gateways: mutual TLS with a device certificate, octet-counted
//! RFC 5424 messages carrying medsec security events, ingested like device batches.

use std::sync::Arc;
use std::time::Duration;

use medsec_ca::CaStore;
use medsec_core::DeviceId;
use medsec_postmarket::AttributedEvent;
use medsec_postmarket::event::MAX_DETAILS;
use medsec_postmarket::store::EventSource;
use medsec_postmarket::syslog::{DEFAULT_MAX_FRAME, FrameDecoder, parse_message, to_event};
use time::OffsetDateTime;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::state::AppState;

/// A connection silent this long is closed; gateways reconnect.
const IDLE: Duration = Duration::from_secs(300);
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Events are ingested in batches of at most this many per read.
const MAX_BATCH: usize = 500;

pub async fn serve<S: CaStore + 'static>(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    state: Arc<AppState<S>>,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(config);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("syslog accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                _ => return,
            };
            if let Err(e) = connection(tls, &state).await {
                tracing::info!("syslog connection from {peer} closed: {e}");
            }
        });
    }
}

async fn connection<S: CaStore>(
    mut tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    st: &AppState<S>,
) -> Result<(), String> {
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .ok_or("no client certificate")?;
    // Same checks as the HTTP gateway: revoked, expired, retired devices are refused.
    let sender = st
        .ca
        .authenticate_device_cert(&leaf)
        .await
        .map_err(|e| e.to_string())?
        .device;
    let gateway = st.postmarket_settings.syslog_gateways.contains(&sender);
    let svc = st
        .postmarket
        .as_deref()
        .ok_or("post-market surveillance is off")?;
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match tokio::time::timeout(IDLE, tls.read(&mut buf)).await {
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("idle".into()),
        };
        decoder.push(buf.get(..n).unwrap_or_default());
        let mut batch: Vec<AttributedEvent> = Vec::new();
        // A framing error loses sync with the stream: nothing after it can be trusted.
        while let Some(frame) = decoder.next_frame().map_err(|e| e.to_string())? {
            match attribute(&frame, &sender, gateway) {
                Ok(ev) => batch.push(ev),
                // One bad message is dropped, not the connection: gateways relay many devices.
                Err(e) => tracing::info!("syslog message from {} refused: {e}", sender.urn()),
            }
            if batch.len() >= MAX_BATCH {
                let b = std::mem::take(&mut batch);
                ingest(svc, &st.metrics, b).await?;
            }
        }
        if !batch.is_empty() {
            ingest(svc, &st.metrics, batch).await?;
        }
    }
}

async fn ingest(
    svc: &medsec_postmarket::service::PostmarketService,
    metrics: &crate::metrics::Metrics,
    batch: Vec<AttributedEvent>,
) -> Result<(), String> {
    let out = svc
        .ingest_attributed(EventSource::Syslog, batch, OffsetDateTime::now_utc())
        .await
        .map_err(|e| e.to_string())?;
    metrics.events(
        crate::metrics::EventChannel::Syslog,
        out.accepted,
        out.duplicates,
    );
    Ok(())
}

/// The sender's certificate decides: a device speaks for itself; only a configured gateway may
/// name another device, and that event records which gateway relayed it.
fn attribute(frame: &[u8], sender: &DeviceId, gateway: bool) -> Result<AttributedEvent, String> {
    let msg = parse_message(frame).map_err(|e| e.to_string())?;
    let (claimed, mut event) = to_event(&msg).map_err(|e| e.to_string())?;
    let device = match claimed {
        None => sender.clone(),
        Some(urn) => {
            let d = DeviceId::parse_urn(&urn).map_err(|e| e.to_string())?;
            if d == *sender {
                d
            } else if gateway {
                if event.details.len() >= MAX_DETAILS {
                    return Err("too many details to record the relaying gateway".into());
                }
                event.details.insert("gateway".into(), sender.urn());
                d
            } else {
                return Err(format!(
                    "{} is not a configured gateway and may not report for {urn}",
                    sender.urn()
                ));
            }
        }
    };
    Ok(event.attribute(device))
}

#[cfg(test)]
mod tests {
    use super::*;
    use medsec_core::{DeviceModel, DeviceSerial};

    fn dev(s: &str) -> DeviceId {
        DeviceId::new(
            DeviceModel::parse("pump").unwrap(),
            DeviceSerial::parse(s).unwrap(),
        )
    }

    fn msg(device: Option<&str>) -> Vec<u8> {
        let d = device
            .map(|d| format!(" device=\"{d}\""))
            .unwrap_or_default();
        format!(
            "<34>1 2026-03-01T10:00:00Z gw app - - [medsec@32473 id=\"e1\" type=\"tamper\"{d}] lid opened"
        )
        .into_bytes()
    }

    #[test]
    fn only_gateways_speak_for_others() {
        let gw = dev("GW1");
        let other = dev("P2");
        let own = attribute(&msg(None), &gw, false).unwrap();
        assert_eq!(own.device, gw);
        let e = attribute(&msg(Some(&other.urn())), &gw, false).unwrap_err();
        assert!(e.contains("not a configured gateway"), "{e}");
        let relayed = attribute(&msg(Some(&other.urn())), &gw, true).unwrap();
        assert_eq!(relayed.device, other);
        assert_eq!(relayed.event.details.get("gateway"), Some(&gw.urn()));
        let selfnamed = attribute(&msg(Some(&gw.urn())), &gw, false).unwrap();
        assert_eq!(selfnamed.device, gw);
    }
}
