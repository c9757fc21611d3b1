//! HTTP/3 (RFC 9114) over QUIC (quinn, rustls underneath) on a TLS
//! listener's port, UDP side.  A request goes through the same checks,
//! handler and response-body tracking as over HTTP/1.1 and HTTP/2; the
//! certificate is chosen by the same resolver (SNI, hot reload).
//!
//! What a client may ask is bounded as on TCP: the connection caps (the
//! same counts: a QUIC connection is a connection), the handshake timeout,
//! streams (HTTP/2's `h2_max_streams`), header section size (the head
//! cap), the body cap, flow-control windows (`config.rs`), the first
//! request, idle and send timeouts.  Differences from TCP: over the total
//! cap a new connection is refused at once (UDP has no listen backlog to
//! wait in), and when the caps are half used, a client must first prove
//! its address (a QUIC Retry), so that forged source addresses cannot
//! take the places.

mod body;
mod config;
mod connection;
mod request;

#[cfg(test)]
mod tests;

pub(crate) use body::H3Body;
pub(crate) use config::quic_server_config;
pub(crate) use request::content_length;

use crate::listener::{raised, Shared, Stops};
use crate::refusal::{self, Reason};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;

/// `Alt-Svc` of a TLS listener that also speaks HTTP/3 on `port`: clients
/// may switch for a day (what Caddy and nginx send).
pub(crate) fn alt_svc(port: u16) -> http::HeaderValue {
    http::HeaderValue::from_str(&format!("h3=\":{port}\"; ma=86400"))
        .unwrap_or_else(|_| http::HeaderValue::from_static("clear"))
}

/// Accepts QUIC connections on `endpoint` until the drain begins.
pub(crate) async fn accept_loop(
    endpoint: &quinn::Endpoint,
    shared: &Arc<Shared>,
    stops: &Stops,
    live: &mpsc::Sender<()>,
) {
    let local = endpoint
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut drain = stops.drain.clone();
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => return,
            },
            _ = raised(&mut drain) => return,
        };
        let remote = incoming.remote_address();
        let half = shared.limits.max_connections / 2;
        if !incoming.remote_address_validated() && shared.limiter.available() <= half {
            // Forged addresses cannot answer a Retry; a real client
            // comes back with its token.
            match incoming.retry() {
                Ok(()) => htgate_telemetry::metrics::quic_retry(),
                Err(e) => e.into_incoming().ignore(),
            }
            continue;
        }
        let Some(room) = shared.limiter.try_room() else {
            refusal::record(
                Reason::ConnectionCap,
                remote.ip(),
                None,
                &format!(
                    "QUIC connection refused: the server holds its {} connections (on {local})",
                    shared.limits.max_connections
                ),
            );
            incoming.refuse();
            continue;
        };
        let Some(permit) = shared.limiter.admit(room, remote.ip()) else {
            refusal::record(
                Reason::PerClientConnections,
                remote.ip(),
                None,
                &format!(
                    "QUIC connection refused: the client holds its {} connections (on {local})",
                    shared.limits.max_connections_per_ip
                ),
            );
            incoming.refuse();
            continue;
        };
        tokio::spawn(connection::run(
            incoming,
            Arc::clone(shared),
            stops.clone(),
            permit,
            local,
            live.clone(),
        ));
    }
}
