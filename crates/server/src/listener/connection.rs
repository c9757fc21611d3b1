//! One accepted connection, from the TLS handshake to its end: the loop
//! that serves it and ends it on a timeout or at the end of the drain, and
//! why it ended.

use super::conn_io::{ConnIo, Stream};
use super::conn_state::ConnState;
use super::service::answer;
use super::stops::{raised, Stops};
use super::Shared;
use crate::limits::{ConnPermit, Limits};
use crate::refusal::{self, Reason};
use crate::sending::Sending;
use crate::ConnInfo;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// Why the connection loop ended a connection (for the debug log).
fn end_reason(
    state: &ConnState,
    in_flight: usize,
    limits: &Limits,
) -> Option<(Reason, &'static str)> {
    if state.write_blocked_for() >= limits.send_timeout {
        return Some((
            Reason::SendTimeout,
            "the client took no byte within the send timeout",
        ));
    }
    if in_flight == 0 {
        if state.idle_for() >= limits.idle_timeout {
            return Some((Reason::IdleTimeout, "idle timeout"));
        }
        if state.requests.load(Ordering::Relaxed) == 0
            && state.start.elapsed() >= limits.header_read_timeout
        {
            return Some((
                Reason::HeaderTimeout,
                "no request within the header read timeout",
            ));
        }
    } else if state.h1.load(Ordering::Relaxed)
        && state.waiting_for_client() >= limits.body_read_timeout
    {
        return Some((Reason::BodyReadTimeout, "request body stalled"));
    }
    None
}

/// The refusal behind a connection that ended with an error, if it was one
/// (a client that went away is not).
fn error_reason(e: &(dyn std::error::Error + 'static), state: &ConnState) -> Option<Reason> {
    if state.over_cap.load(Ordering::Relaxed) {
        return Some(Reason::BodyOverCap);
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_parse_too_large() {
                return Some(Reason::HeaderFieldsTooLarge);
            }
            if h.is_parse() || h.is_parse_status() {
                return Some(Reason::ParseError);
            }
            if h.is_timeout() {
                return Some(Reason::HeaderTimeout);
            }
        }
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            // A GOAWAY this server sent (ENHANCE_YOUR_CALM for floods of
            // resets, PROTOCOL_ERROR, too many CONTINUATION frames...).
            if h2.is_go_away() && h2.is_library() && h2.reason() != Some(h2::Reason::NO_ERROR) {
                return Some(Reason::H2Goaway);
            }
        }
        cur = err.source();
    }
    None
}

/// One accepted connection, from the TLS handshake to its end.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_connection(
    stream: TcpStream,
    remote: SocketAddr,
    fallback_local: SocketAddr,
    tls: Option<TlsAcceptor>,
    alt_svc: Option<http::HeaderValue>,
    shared: Arc<Shared>,
    watcher: Watcher,
    mut stops: Stops,
    permit: ConnPermit,
) {
    let places = permit.sending();
    // Held to the end of the task: the connection counts until then.
    let _permit = permit;
    let _open = htgate_telemetry::metrics::ConnectionGuard::open();
    let limits = &shared.limits;
    // Small responses should not wait for Nagle; failure only costs speed.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%remote, error = %e, "cannot set TCP_NODELAY");
    }
    let local = stream.local_addr().unwrap_or(fallback_local);
    let is_tls = tls.is_some();
    let (inner, sni) = match tls {
        None => (Stream::Plain(stream), None),
        Some(acceptor) => {
            let handshake =
                tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(stream));
            let result = tokio::select! {
                r = handshake => r,
                _ = raised(&mut stops.drain) => return,
                _ = raised(&mut stops.hard) => return,
            };
            let Some(s) = crate::handshake::outcome(result, remote, "TLS") else {
                return;
            };
            let sni = s.get_ref().1.server_name().map(str::to_owned);
            (Stream::Tls(Box::new(s)), sni)
        }
    };

    let info_sni = sni.clone();
    let info = Arc::new(ConnInfo {
        remote,
        local,
        tls: is_tls,
        sni,
        trusted_proxy: false,
        proxied_https: false,
    });
    let state =
        Arc::new(ConnState::new(limits.max_body_bytes.saturating_add(
            u64::try_from(limits.max_head_bytes).unwrap_or(u64::MAX),
        )));
    let io = TokioIo::new(ConnIo {
        inner,
        state: Arc::clone(&state),
    });
    let in_flight = Arc::new(AtomicUsize::new(0));
    let sending = Sending::new(places);
    let bodies = Arc::clone(&sending);
    let handler = Arc::clone(&shared.handler);
    let counter = Arc::clone(&in_flight);
    let request_state = Arc::clone(&state);
    let request_limits = limits.clone();
    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        request_state.request_started(req.version());
        answer(
            req.map(crate::RequestBody::from),
            &request_limits,
            remote,
            &info,
            &handler,
            &counter,
            &bodies,
            alt_svc.as_ref(),
        )
    });

    let conn = watcher.watch(shared.builder.serve_connection(io, service));
    tokio::pin!(conn);
    let mut check = tokio::time::interval(limits.check_every());
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            res = &mut conn => {
                if let Err(e) = res {
                    tracing::debug!(%remote, error = %e, "connection ended with an error");
                    if let Some(reason) = error_reason(e.as_ref(), &state) {
                        refusal::record(reason, remote.ip(), info_sni.as_deref(), &e.to_string());
                    }
                }
                break;
            }
            _ = check.tick() => {
                let sent = sending.check(limits.send_timeout);
                if sent.expired > 0 && !sent.stalled {
                    refusal::record(
                        Reason::SendTimeout,
                        remote.ip(),
                        info_sni.as_deref(),
                        &format!("{} response(s) not taken by the client within the send timeout; dropped", sent.expired),
                    );
                }
                let why = if sent.stalled {
                    Some((Reason::SendTimeout, "no response data taken by the client within the send timeout"))
                } else {
                    end_reason(&state, in_flight.load(Ordering::Relaxed), limits)
                };
                if let Some((reason, why)) = why {
                    refusal::record(reason, remote.ip(), info_sni.as_deref(), &format!("connection reset: {why}"));
                    state.abort.store(true, Ordering::Relaxed);
                    break;
                }
            }
            _ = raised(&mut stops.hard) => {
                tracing::debug!(%remote, "closing connection at the end of the drain");
                state.abort.store(true, Ordering::Relaxed);
                break;
            }
        }
    }
}
