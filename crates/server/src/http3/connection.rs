//! One QUIC connection, from the handshake to its end: the HTTP/3
//! connection over it, a task per request, the timeouts the TCP side has
//! (first request, idle, responses the client does not take), and the
//! graceful end (GOAWAY, then the requests in progress finish).

use super::request;
use crate::limits::ConnPermit;
use crate::listener::{raised, Shared, Stops};
use crate::refusal::{self, Reason};
use crate::sending::Sending;
use crate::ConnInfo;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the requests of one connection share.
pub(super) struct ConnShared {
    pub(super) shared: Arc<Shared>,
    pub(super) info: Arc<ConnInfo>,
    pub(super) sending: Arc<Sending>,
    /// Requests whose handler has not answered yet: kept by [`answer`]
    /// (shared with TCP); HTTP/3 itself reads `streams`, which covers it.
    ///
    /// [`answer`]: crate::listener::answer
    pub(super) in_flight: Arc<AtomicUsize>,
    /// Request tasks still running (answering or sending).
    streams: AtomicUsize,
    /// Woken when the last running request task ends.
    quiet: tokio::sync::Notify,
    start: Instant,
    /// Milliseconds after `start` of the last request event.
    active_ms: AtomicU64,
}

impl ConnShared {
    /// Something happened on a request: the connection is not idle.
    pub(super) fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.active_ms.store(ms, Ordering::Relaxed);
    }

    /// A request task starts; it counts until the guard is dropped.
    pub(super) fn stream(self: &Arc<Self>) -> StreamGuard {
        self.streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(Arc::clone(self))
    }

    fn busy(&self) -> bool {
        self.streams.load(Ordering::Acquire) > 0
    }

    /// Waits until no request task runs.
    async fn until_quiet(&self) {
        loop {
            let notified = self.quiet.notified();
            tokio::pin!(notified);
            // Registered before the check: an end between the two wakes it.
            notified.as_mut().enable();
            if !self.busy() {
                return;
            }
            notified.await;
        }
    }

    fn idle_for(&self) -> Duration {
        self.start.elapsed().saturating_sub(Duration::from_millis(
            self.active_ms.load(Ordering::Relaxed),
        ))
    }
}

/// Counts a running request task (see [`ConnShared::stream`]).
pub(super) struct StreamGuard(Arc<ConnShared>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.touch();
        if self.0.streams.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.quiet.notify_waiters();
        }
    }
}

/// HTTP/3's "no error" code, for closes that are not failures.
fn no_error() -> quinn::VarInt {
    quinn::VarInt::from_u32(0x100)
}

/// One QUIC connection from `incoming`; `_live` is held to the end so the
/// drain can wait for it.
pub(super) async fn run(
    incoming: quinn::Incoming,
    shared: Arc<Shared>,
    mut stops: Stops,
    permit: ConnPermit,
    local: SocketAddr,
    _live: mpsc::Sender<()>,
) {
    let places = permit.sending();
    // Held to the end of the task: the connection counts until then.
    let _permit = permit;
    let _open = htgate_telemetry::metrics::ConnectionGuard::open();
    let limits = &shared.limits;
    let remote = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%remote, error = %e, "QUIC connection refused");
            return;
        }
    };
    let handshake = tokio::time::timeout(limits.tls_handshake_timeout, connecting);
    let result = tokio::select! {
        r = handshake => r,
        _ = raised(&mut stops.drain) => return,
        _ = raised(&mut stops.hard) => return,
    };
    let Some(quic) = crate::handshake::outcome(result, remote, "QUIC") else {
        return;
    };
    let sni = quic
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.server_name);
    let local = quic
        .local_ip()
        .map_or(local, |ip| SocketAddr::new(ip, local.port()));
    let info = Arc::new(ConnInfo {
        remote,
        local,
        tls: true,
        sni,
        trusted_proxy: false,
        proxied_https: false,
    });
    let mut h3 = match h3::server::builder()
        .max_field_section_size(u64::try_from(limits.max_head_bytes).unwrap_or(u64::MAX))
        .build::<_, Bytes>(h3_quinn::Connection::new(quic.clone()))
        .await
    {
        Ok(h3) => h3,
        Err(e) => {
            tracing::debug!(%remote, error = %e, "HTTP/3 connection not established");
            return;
        }
    };
    let conn = Arc::new(ConnShared {
        shared: Arc::clone(&shared),
        info,
        sending: Sending::new(places),
        in_flight: Arc::new(AtomicUsize::new(0)),
        streams: AtomicUsize::new(0),
        quiet: tokio::sync::Notify::new(),
        start: Instant::now(),
        active_ms: AtomicU64::new(0),
    });
    let mut requests: u64 = 0;
    let mut check = tokio::time::interval(limits.check_every());
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut go_away = false;
        tokio::select! {
            accepted = h3.accept() => match accepted {
                Ok(Some(resolver)) => {
                    requests += 1;
                    conn.touch();
                    let guard = conn.stream();
                    tokio::spawn(request::serve(resolver, Arc::clone(&conn), guard));
                }
                // The client closed the connection (or sent GOAWAY and
                // its requests are done).
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(%remote, error = %e, "HTTP/3 connection ended");
                    break;
                }
            },
            _ = check.tick() => {
                if let Some((reason, why)) = end_reason(&conn, requests, limits) {
                    refusal::record(reason, remote.ip(), conn.info.sni.as_deref(), &format!("HTTP/3 connection closed: {why}"));
                    quic.close(no_error(), why.as_bytes());
                    break;
                }
            }
            _ = raised(&mut stops.drain) => go_away = true,
            _ = raised(&mut stops.hard) => {
                tracing::debug!(%remote, "closing HTTP/3 connection at the end of the drain");
                quic.close(no_error(), b"shutdown");
                break;
            }
        }
        if go_away {
            // GOAWAY: the client sends no new request here; the requests
            // already accepted run in their own tasks and finish below (h3
            // would wait for the client to close before `accept` ends).
            if let Err(e) = h3.shutdown(0).await {
                tracing::debug!(%remote, error = %e, "HTTP/3 GOAWAY not sent");
            }
            break;
        }
    }
    // Requests still answering keep their streams; wait for them (the
    // end of the drain, or answers the client does not take for the send
    // timeout, end this wait too), then close.
    tokio::select! {
        _ = conn.until_quiet() => {}
        _ = raised(&mut stops.hard) => {}
        _ = stalled(&conn, limits) => {}
    }
    quic.close(no_error(), b"");
}

/// Resolves once the connection's answers have waited for the client for
/// the send timeout.
async fn stalled(conn: &ConnShared, limits: &crate::limits::Limits) {
    loop {
        tokio::time::sleep(limits.check_every()).await;
        if conn.sending.check(limits.send_timeout).stalled {
            return;
        }
    }
}

/// Why the connection should end now, if it should.
fn end_reason(
    conn: &ConnShared,
    requests: u64,
    limits: &crate::limits::Limits,
) -> Option<(Reason, &'static str)> {
    let checked = conn.sending.check(limits.send_timeout);
    if checked.stalled {
        return Some((
            Reason::SendTimeout,
            "no response data taken by the client within the send timeout",
        ));
    }
    if !conn.busy() {
        if requests == 0 && conn.start.elapsed() >= limits.header_read_timeout {
            return Some((
                Reason::HeaderTimeout,
                "no request within the header read timeout",
            ));
        }
        if conn.idle_for() >= limits.idle_timeout {
            return Some((Reason::IdleTimeout, "idle timeout"));
        }
    }
    None
}
