//! Listening sockets and the connection loop: plain TCP or TLS (rustls),
//! HTTP/1.1 and HTTP/2 (ALPN on TLS, the h2c preface on plain TCP), each
//! request handed to a [`Handler`].
//!
//! Every connection runs in its own task: its errors are logged at debug
//! level and end only that connection.  What a client may ask of the server
//! is bounded by [`Limits`] (see `limits.rs` for the values):
//! - connections: a total cap taken before `accept` (over it the server
//!   stops accepting until one ends: back-pressure, not accept-and-drop)
//!   and a per-client cap (over it a new connection is closed at once);
//! - slow or idle clients: the TLS handshake timeout, hyper's HTTP/1 header
//!   read timeout (which also covers idle keep-alive), a deadline for the
//!   first request of every connection (the HTTP/2 preface and the bytes
//!   hyper's protocol detection waits for have no other), an idle timeout
//!   for connections with no request in progress and no bytes moving, and
//!   a body read timeout for HTTP/1 requests whose handler waits for body
//!   bytes that do not come;
//! - sizes: request line (414), header fields (431) and declared body (413)
//!   are checked before the handler runs, with Apache's status pages;
//!   larger heads are refused by hyper's parser (a bare 431); a chunked
//!   HTTP/1 body that grows past the body cap closes the connection;
//! - HTTP/1 framing hyper leaves to the server: a `Transfer-Encoding` other
//!   than exactly `chunked`, a missing (HTTP/1.1), repeated or malformed
//!   `Host`, the authority-form outside CONNECT: 400; a chunked request's
//!   connection ends after its answer (it may have carried a
//!   `Content-Length` too, which hyper drops: RFC 9112 §6.1);
//! - HTTP/2: concurrent streams, header list size, CONTINUATION frames
//!   (the h2 crate counts them, ≥ 0.4.4), resets the client makes before
//!   the server accepted the stream (CVE-2023-44487, rapid reset) and
//!   resets the client provokes (CVE-2025-8671): past those, GOAWAY;
//! - responses the client does not take (`sending.rs`): every response
//!   body is tracked; one over 16 KiB needs a place among its client
//!   address's `max_sending_per_client` before it is polled (a static
//!   file opens only then), and the send timeout drops a body the client
//!   takes nothing of, and resets a connection where a response waits and
//!   nothing moves, or whose socket takes no byte, for that long; h2
//!   queues at most `h2_max_send_buf` bytes per stream.
//!
//! Every refusal is counted and logged, rate-limited (`refusal.rs`).
//!
//! Closed without any answer: a connection over the per-client cap, a TLS
//! handshake or first request that does not come in time, a head that
//! does not complete within the header timeout (Apache sends 408 there;
//! hyper has no hook for it), an idle connection, a stalled or oversized
//! HTTP/1 body, an abusive HTTP/2 connection (after its GOAWAY).  The
//! timeouts end their connection with a reset, so that a response the
//! client stopped reading does not stay queued in the kernel.

mod accept;
mod conn_io;
mod conn_state;
mod connection;
mod http_settings;
mod service;
mod stops;

#[cfg(test)]
mod bind_error_tests;
#[cfg(test)]
mod tests;

use super::limits::{ConnLimiter, Limits};
use super::Handler;
use accept::accept_loop;
use http_settings::make_builder;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
pub(crate) use service::answer;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
pub(crate) use stops::{raised, Stops};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use super::limits::{DRAIN_TIMEOUT, IDLE_TIMEOUT, MAX_BODY_BYTES};

/// A bound listening socket, plain or TLS; a TLS one may also serve
/// HTTP/3 on the same port over UDP ([`Listener::with_http3`]).
pub struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    /// The UDP socket of HTTP/3, until `serve` starts its endpoint.
    http3: Option<std::net::UdpSocket>,
    /// `Alt-Svc` added to this listener's HTTPS answers.
    alt_svc: Option<http::HeaderValue>,
}

impl Listener {
    /// Binds `addr`; with a TLS configuration the listener speaks HTTPS.
    pub async fn bind(
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<Listener> {
        let tcp = TcpListener::bind(addr).await?;
        Ok(Listener::from_tcp(tcp, tls))
    }

    /// Wraps an already bound socket (inherited or made by the caller).
    pub(crate) fn from_tcp(tcp: TcpListener, tls: Option<Arc<rustls::ServerConfig>>) -> Listener {
        Listener {
            tcp,
            tls: tls.map(TlsAcceptor::from),
            http3: None,
            alt_svc: None,
        }
    }

    /// Also serves HTTP/3 on this TLS listener's address (UDP, same port),
    /// with the same certificates; `advertise` adds `Alt-Svc: h3=":PORT"`
    /// to the answers given over TCP, so that browsers switch.
    pub fn with_http3(mut self, advertise: bool) -> io::Result<Listener> {
        if self.tls.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "HTTP/3 needs a TLS listener",
            ));
        }
        let addr = self.tcp.local_addr()?;
        let udp = std::net::UdpSocket::bind(addr)?;
        if advertise {
            self.alt_svc = Some(crate::http3::alt_svc(addr.port()));
        }
        self.http3 = Some(udp);
        Ok(self)
    }

    /// The UDP address of HTTP/3, if this listener serves it.
    pub fn http3_addr(&self) -> Option<SocketAddr> {
        self.http3.as_ref().and_then(|u| u.local_addr().ok())
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// What every connection task shares.
pub(crate) struct Shared {
    builder: auto::Builder<TokioExecutor>,
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) limits: Limits,
    pub(crate) limiter: Arc<ConnLimiter>,
}

/// Accepts on every listener until `shutdown` resolves, then stops
/// accepting and drains in-flight connections (graceful, bounded by the
/// drain timeout, [`DRAIN_TIMEOUT`] by default, after which the remaining
/// connections are closed).  The limits are the process's
/// ([`Limits::process`]), and the connection caps are shared by every
/// `serve` of the process.
pub async fn serve(
    listeners: Vec<Listener>,
    handler: Arc<dyn Handler>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_inner(
        listeners,
        handler,
        shutdown,
        Limits::process().clone(),
        ConnLimiter::process_wide(),
    )
    .await
}

/// [`serve`] with other limits, and connection caps of its own.
pub async fn serve_with_limits(
    listeners: Vec<Listener>,
    handler: Arc<dyn Handler>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: Limits,
) -> io::Result<()> {
    let limiter = ConnLimiter::with_sending(
        limits.max_connections,
        limits.max_connections_per_ip,
        limits.max_sending_per_client,
    );
    serve_inner(listeners, handler, shutdown, limits, limiter).await
}

async fn serve_inner(
    mut listeners: Vec<Listener>,
    handler: Arc<dyn Handler>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: Limits,
    limiter: Arc<ConnLimiter>,
) -> io::Result<()> {
    let shared = Arc::new(Shared {
        builder: make_builder(&limits),
        handler,
        limits,
        limiter,
    });
    let graceful = GracefulShutdown::new();
    let (drain_tx, drain_rx) = watch::channel(false);
    let (hard_tx, hard_rx) = watch::channel(false);
    let stops = Stops {
        drain: drain_rx,
        hard: hard_rx,
    };
    let endpoints = quic_endpoints(&mut listeners, &shared.limits)?;
    // Every QUIC connection task holds a sender; the drain waits for the
    // channel to close.
    let (live_tx, mut live_rx) = tokio::sync::mpsc::channel::<()>(1);
    {
        let loops = futures_util::future::join_all(
            listeners
                .iter()
                .map(|l| accept_loop(l, &shared, &graceful, &stops)),
        );
        let quic_loops = futures_util::future::join_all(
            endpoints
                .iter()
                .map(|e| crate::http3::accept_loop(e, &shared, &stops, &live_tx)),
        );
        let run = async {
            futures_util::future::join(loops, quic_loops).await;
            // Only reached with no listeners: just wait for shutdown.
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = run => {}
            _ = shutdown => {}
        }
    }
    // Stop accepting: the sockets close here (QUIC's once its
    // connections have ended).
    drop(listeners);
    drop(live_tx);
    let _ = drain_tx.send(true);
    tracing::debug!(connections = graceful.count(), "shutting down; draining");
    let drained = futures_util::future::join(graceful.shutdown(), live_rx.recv());
    if tokio::time::timeout(shared.limits.drain_timeout, drained)
        .await
        .is_err()
    {
        tracing::warn!("drain timeout reached; closing the remaining connections");
        // Every connection task watches this flag and ends at once.
        let _ = hard_tx.send(true);
    }
    for endpoint in &endpoints {
        endpoint.close(quinn::VarInt::from_u32(0x100), b"shutdown");
    }
    // The close frames go out before the sockets do (bounded: a peer that
    // is gone is not waited for).
    for endpoint in &endpoints {
        let _ = tokio::time::timeout(QUIC_CLOSE_WAIT, endpoint.wait_idle()).await;
    }
    Ok(())
}

/// How long the end of a drain waits for QUIC's close frames to go out.
const QUIC_CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The QUIC endpoints of the listeners that serve HTTP/3.
fn quic_endpoints(listeners: &mut [Listener], limits: &Limits) -> io::Result<Vec<quinn::Endpoint>> {
    let mut endpoints = Vec::new();
    for l in listeners.iter_mut() {
        let (Some(udp), Some(tls)) = (l.http3.take(), l.tls.as_ref()) else {
            continue;
        };
        let config = crate::http3::quic_server_config(tls.config(), limits)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(config),
            udp,
            Arc::new(quinn::TokioRuntime),
        )?;
        endpoints.push(endpoint);
    }
    Ok(endpoints)
}

/// The error of a socket that cannot be bound, with what to do about the
/// two usual causes; `choose` says how to pick another address.
pub fn bind_error(addr: SocketAddr, e: &std::io::Error, choose: &str) -> anyhow::Error {
    let hint = match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            " (another program listens there: stop it, or choose a free port with {choose})"
        ),
        std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => format!(
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE, or choose a port above 1023 with {choose})"
        ),
        _ => String::new(),
    };
    anyhow::anyhow!("cannot listen on {addr}: {e}{hint}")
}
