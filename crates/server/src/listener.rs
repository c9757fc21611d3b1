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

use super::limits::{
    check_request, close_after, ConnLimiter, ConnPermit, Limits, PARSER_MAX_HEADERS,
};
use super::refusal::{self, Reason};
use super::sending::Sending;
use super::{ConnInfo, Handler, HandlerFuture};
use futures_util::FutureExt;
use htgate_content::status_page::error_response;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use super::limits::{
    BODY_READ_TIMEOUT, DRAIN_TIMEOUT, HEADER_READ_TIMEOUT, IDLE_TIMEOUT, MAX_BODY_BYTES,
    TLS_HANDSHAKE_TIMEOUT,
};

/// Pause after an accept error such as EMFILE before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A bound listening socket, plain or TLS.
pub struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
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
    pub fn from_tcp(tcp: TcpListener, tls: Option<Arc<rustls::ServerConfig>>) -> Listener {
        Listener {
            tcp,
            tls: tls.map(TlsAcceptor::from),
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// What every connection task shares.
struct Shared {
    builder: auto::Builder<TokioExecutor>,
    handler: Arc<dyn Handler>,
    limits: Limits,
    limiter: Arc<ConnLimiter>,
}

fn make_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // The whole head must fit in the read buffer: past it hyper answers
        // 431 itself.  hyper's floor for the buffer is 8 KiB.
        .max_buf_size(limits.max_head_bytes.max(8192))
        // Room for more fields than allowed, so that a few too many get
        // our 431 page rather than hyper's bare one.
        .max_headers(PARSER_MAX_HEADERS.max(limits.max_fields + 1))
        // Without this hyper reads from the socket while the handler runs
        // (to notice an early EOF), which the body read timeout could not
        // tell from waiting for the body; with it a client that shuts down
        // its sending side after the request still gets its answer.
        .half_close(true)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_streams)
        .max_pending_accept_reset_streams(limits.h2_max_pending_resets)
        .max_local_error_reset_streams(limits.h2_max_local_error_resets)
        // hyper's default is 400 KiB per stream: with 100 streams whose
        // windows the client keeps shut, 40 MiB per connection.
        .max_send_buf_size(limits.h2_max_send_buf)
        .max_header_list_size(u32::try_from(limits.max_head_bytes).unwrap_or(u32::MAX));
    builder
}

/// What the connection loop watches: when bytes last moved, whether hyper
/// is waiting for the client, how much was read for the current request.
struct ConnState {
    start: Instant,
    /// Milliseconds since `start` when bytes last moved.
    last_ms: AtomicU64,
    /// 0 when hyper is not waiting for the client's bytes, else 1 + the
    /// millisecond at which a read first found nothing to read.
    read_wait: AtomicU64,
    /// Bytes read since the current request's head was handed over.
    request_bytes: AtomicU64,
    /// Past this many bytes for one HTTP/1 request, reading fails.
    max_request_bytes: u64,
    /// The connection speaks HTTP/1 (known from its first request).
    h1: AtomicBool,
    /// Requests seen on this connection.
    requests: AtomicU64,
    /// The connection is ended by a timeout or the end of the drain: close
    /// it with a reset, so that a response the client never read does not
    /// keep kernel memory (a FIN queued behind unsent data waits for a
    /// window the client never opens).
    abort: AtomicBool,
    /// 0, or 1 + the millisecond since which the socket takes no byte (a
    /// write returned Pending and none succeeded since).
    write_blocked: AtomicU64,
    /// A chunked HTTP/1 body went over the body cap.
    over_cap: AtomicBool,
}

impl ConnState {
    fn new(max_request_bytes: u64) -> ConnState {
        ConnState {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            read_wait: AtomicU64::new(0),
            request_bytes: AtomicU64::new(0),
            max_request_bytes,
            h1: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            abort: AtomicBool::new(false),
            write_blocked: AtomicU64::new(0),
            over_cap: AtomicBool::new(false),
        }
    }

    /// A write found the socket full.
    fn write_pending(&self) {
        let now = self.elapsed_ms().saturating_add(1);
        let _ = self
            .write_blocked
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// A write took bytes.
    fn write_done(&self) {
        self.write_blocked.store(0, Ordering::Relaxed);
        self.touch();
    }

    /// How long the socket has taken no byte while the server had some to
    /// write.
    fn write_blocked_for(&self) -> Duration {
        match self.write_blocked.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_millis(self.elapsed_ms().saturating_sub(since - 1)),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_ms.store(self.elapsed_ms(), Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = self.last_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.elapsed_ms().saturating_sub(last))
    }

    /// A read found nothing: hyper now waits for the client (kept from the
    /// first such read until bytes come).
    fn read_pending(&self) {
        let now = self.elapsed_ms().saturating_add(1);
        let _ = self
            .read_wait
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// A read returned (bytes or EOF): nobody waits any more.
    fn read_ready(&self) {
        self.read_wait.store(0, Ordering::Relaxed);
    }

    /// How long hyper has been waiting for the client's bytes.
    fn waiting_for_client(&self) -> Duration {
        match self.read_wait.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_millis(self.elapsed_ms().saturating_sub(since - 1)),
        }
    }

    /// Counts `n` bytes read; true when an HTTP/1 request went over the
    /// body cap with them.
    fn count_read(&self, n: usize) -> bool {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        let total = self
            .request_bytes
            .fetch_add(n, Ordering::Relaxed)
            .saturating_add(n);
        total > self.max_request_bytes && self.h1.load(Ordering::Relaxed)
    }

    /// A request head was handed over.
    fn request_started(&self, version: http::Version) {
        self.request_bytes.store(0, Ordering::Relaxed);
        self.h1
            .store(version < http::Version::HTTP_2, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// The connection's byte stream, reporting to the [`ConnState`].
struct ConnIo {
    inner: Stream,
    state: Arc<ConnState>,
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        if self.state.abort.load(Ordering::Relaxed) {
            let tcp = match &self.inner {
                Stream::Plain(s) => s,
                Stream::Tls(s) => s.get_ref().0,
            };
            // Failure only means a normal close instead of a reset.
            let _ = tcp.set_zero_linger();
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = match &mut this.inner {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        match &res {
            Poll::Ready(Ok(())) => {
                this.state.read_ready();
                let n = buf.filled().len().saturating_sub(before);
                if n > 0 {
                    this.state.touch();
                    if this.state.count_read(n) {
                        this.state.over_cap.store(true, Ordering::Relaxed);
                        // The body is already larger than any request may
                        // be; hyper turns this into the end of the
                        // connection (and an error for the handler).
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "request body over the size limit",
                        )));
                    }
                }
            }
            Poll::Pending => this.state.read_pending(),
            Poll::Ready(Err(_)) => this.state.read_ready(),
        }
        res
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = match &mut this.inner {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, data),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        };
        match &res {
            Poll::Ready(Ok(n)) if *n > 0 => this.state.write_done(),
            Poll::Pending => this.state.write_pending(),
            _ => {}
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = match &mut this.inner {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        };
        match &res {
            Poll::Ready(Ok(n)) if *n > 0 => this.state.write_done(),
            Poll::Pending => this.state.write_pending(),
            _ => {}
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Counts a request as in progress until its handler has answered.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(count: &Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(count))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Waits until the flag is raised (or its sender is gone).
async fn raised(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// The answer to a request refused by a limit: Apache's status page, and
/// on HTTP/1 the end of the connection (an unread body may follow the
/// head, and nothing after it can be trusted to be a request).
/// Apache's `ap_status_drops_connection`: after these answers an HTTP/1
/// connection is closed (`Connection: close`), whatever KeepAlive says:
/// the request may not have been read to its end, or the server is in
/// trouble.
fn drops_connection(status: http::StatusCode) -> bool {
    use http::StatusCode as S;
    matches!(
        status,
        S::BAD_REQUEST
            | S::REQUEST_TIMEOUT
            | S::LENGTH_REQUIRED
            | S::PAYLOAD_TOO_LARGE
            | S::URI_TOO_LONG
            | S::INTERNAL_SERVER_ERROR
            | S::SERVICE_UNAVAILABLE
            | S::NOT_IMPLEMENTED
    )
}

fn refusal(
    status: http::StatusCode,
    method: &http::Method,
    version: http::Version,
) -> HandlerFuture {
    let mut resp = error_response(status, method, None);
    if version < http::Version::HTTP_2 {
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    Box::pin(std::future::ready(resp))
}

/// The two stop signals of a connection: `drain` (shutdown began: a
/// connection still in its TLS handshake is dropped, since it has no
/// request to finish) and `hard` (the drain is over: everything ends).
#[derive(Clone)]
struct Stops {
    drain: watch::Receiver<bool>,
    hard: watch::Receiver<bool>,
}

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
async fn run_connection(
    stream: TcpStream,
    remote: SocketAddr,
    fallback_local: SocketAddr,
    tls: Option<TlsAcceptor>,
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
            match result {
                Ok(Ok(s)) => {
                    htgate_telemetry::metrics::tls_handshake("ok");
                    let sni = s.get_ref().1.server_name().map(str::to_owned);
                    (Stream::Tls(Box::new(s)), sni)
                }
                Ok(Err(e)) => {
                    htgate_telemetry::metrics::tls_handshake("failed");
                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    htgate_telemetry::metrics::tls_handshake("timeout");
                    refusal::record(
                        Reason::TlsHandshakeTimeout,
                        remote.ip(),
                        None,
                        "TLS handshake not completed in time",
                    );
                    return;
                }
            }
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
        let guard = InFlight::enter(&counter);
        let method = req.method().clone();
        let version = req.version();
        let close = close_after(&req);
        let bodies = Arc::clone(&bodies);
        let call = match check_request(&req, &request_limits) {
            Some(status) => {
                let host = req
                    .uri()
                    .host()
                    .or_else(|| req.headers().get(http::header::HOST)?.to_str().ok());
                refusal::record(
                    Reason::of_status(status),
                    remote.ip(),
                    host.or(info.sni.as_deref()),
                    &format!("request answered {status}"),
                );
                Ok(refusal(status, &method, req.version()))
            }
            // The handler is the engine's code; a panic in it must cost
            // one request (a 500), not the connection or the process.
            None => std::panic::catch_unwind(AssertUnwindSafe(|| {
                handler.handle(req, Arc::clone(&info))
            })),
        };
        async move {
            let outcome = match call {
                Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await,
                Err(panic) => Err(panic),
            };
            let mut resp = match outcome {
                Ok(resp) => resp,
                Err(_) => {
                    tracing::error!(%remote, "request handler panicked");
                    error_response(http::StatusCode::INTERNAL_SERVER_ERROR, &method, None)
                }
            };
            if close || (version < http::Version::HTTP_2 && drops_connection(resp.status())) {
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            drop(guard);
            Ok::<_, std::convert::Infallible>(resp.map(|b| bodies.track(b)))
        }
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

/// Errors of `accept` that concern one would-be connection only.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Accepts on one listener forever, spawning a task per connection.
async fn accept_loop(
    listener: &Listener,
    shared: &Arc<Shared>,
    graceful: &GracefulShutdown,
    stops: &Stops,
) {
    let fallback_local = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut at_cap = false;
    loop {
        // Room first, then accept: over the cap, clients wait in the
        // kernel's listen backlog instead of being accepted and dropped.
        if shared.limiter.available() == 0 && !at_cap {
            at_cap = true;
            tracing::warn!(
                listener = %fallback_local,
                cap = shared.limits.max_connections,
                "connection cap reached; not accepting until a connection ends"
            );
        }
        let Some(room) = shared.limiter.room().await else {
            // The semaphore is never closed; if it were, serve nothing.
            return std::future::pending().await;
        };
        if at_cap {
            at_cap = false;
            tracing::info!(listener = %fallback_local, "accepting connections again");
        }
        match listener.tcp.accept().await {
            Ok((stream, remote)) => {
                let Some(permit) = shared.limiter.admit(room, remote.ip()) else {
                    refusal::record(
                        Reason::PerClientConnections,
                        remote.ip(),
                        None,
                        &format!(
                            "connection closed: the client holds its {} connections (on {fallback_local})",
                            shared.limits.max_connections_per_ip
                        ),
                    );
                    drop(stream);
                    continue;
                };
                // The watcher is taken here, before the task runs, so a
                // shutdown that starts during the TLS handshake still
                // waits for (and then gracefully ends) this connection.
                let watcher = graceful.watcher();
                tokio::spawn(run_connection(
                    stream,
                    remote,
                    fallback_local,
                    listener.tls.clone(),
                    Arc::clone(shared),
                    watcher,
                    stops.clone(),
                    permit,
                ));
            }
            Err(e) if is_connection_error(&e) => {
                tracing::debug!(listener = %fallback_local, error = %e, "accept: connection lost");
            }
            Err(e) => {
                tracing::warn!(listener = %fallback_local, error = %e, "accept failed; retrying");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
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
    listeners: Vec<Listener>,
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
    {
        let loops = futures_util::future::join_all(
            listeners
                .iter()
                .map(|l| accept_loop(l, &shared, &graceful, &stops)),
        );
        let run = async {
            loops.await;
            // Only reached with no listeners: just wait for shutdown.
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = run => {}
            _ = shutdown => {}
        }
    }
    // Stop accepting: the sockets close here.
    drop(listeners);
    let _ = drain_tx.send(true);
    tracing::debug!(connections = graceful.count(), "shutting down; draining");
    if tokio::time::timeout(shared.limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain timeout reached; closing the remaining connections");
        // Every connection task watches this flag and ends at once.
        let _ = hard_tx.send(true);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{full_body, HandlerFuture};
    use rustls_pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const T: Duration = Duration::from_secs(10);

    struct Hello;

    impl Handler for Hello {
        fn handle(
            &self,
            req: http::Request<hyper::body::Incoming>,
            conn: Arc<ConnInfo>,
        ) -> HandlerFuture {
            let text = format!(
                "{} {} tls={} sni={} local={}",
                req.method(),
                req.uri().path(),
                conn.tls,
                conn.sni.as_deref().unwrap_or("-"),
                conn.local.ip(),
            );
            Box::pin(async move {
                if text.contains("/panic") {
                    panic!("test panic");
                }
                http::Response::new(full_body(text))
            })
        }
    }

    /// Sends one HTTP/1.1 request with `Connection: close` and reads the
    /// whole answer (a missing TLS close_notify is not an error here).
    async fn get<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, path: &str) -> String {
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        if s.write_all(req.as_bytes()).await.is_err() {
            return String::new();
        }
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn client_config(
        cert: &rustls_pki_types::CertificateDer<'static>,
        alpn: &[&[u8]],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone()).expect("add root");
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(cfg)
    }

    #[tokio::test]
    async fn serves_plain_and_tls() {
        let (certs, key) = crate::tls::self_signed(&[]).expect("cert");
        let cfg = crate::tls::server_config(certs.clone(), key).expect("config");
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let plain = Listener::bind(loopback, None).await.expect("bind plain");
        let tls = Listener::bind(loopback, Some(cfg)).await.expect("bind tls");
        assert!(!plain.is_tls() && tls.is_tls());
        let plain_addr = plain.local_addr().expect("addr");
        let tls_addr = tls.local_addr().expect("addr");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(vec![plain, tls], Arc::new(Hello), async move {
            let _ = stop_rx.await;
        }));

        // Plain HTTP/1.1.
        let s = TcpStream::connect(plain_addr).await.expect("connect");
        let resp = tokio::time::timeout(T, get(s, "/x"))
            .await
            .expect("in time");
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
        assert!(
            resp.ends_with("GET /x tls=false sni=- local=127.0.0.1"),
            "{resp}"
        );

        // Garbage on the plain port: a 400, and the server goes on.
        let mut s = TcpStream::connect(plain_addr).await.expect("connect");
        let _ = s.write_all(b"\x00\x01garbage\r\n\r\n").await;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(T, s.read_to_end(&mut buf)).await;
        drop(s);

        // A handler panic is a 500 for that request only.
        let s = TcpStream::connect(plain_addr).await.expect("connect");
        let resp = tokio::time::timeout(T, get(s, "/panic"))
            .await
            .expect("in time");
        assert!(resp.starts_with("HTTP/1.1 500 "), "{resp}");

        // Garbage on the TLS port ends that connection only.
        let mut s = TcpStream::connect(tls_addr).await.expect("connect");
        let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n").await;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(T, s.read_to_end(&mut buf)).await;
        drop(s);

        // TLS with ALPN http/1.1, SNI "localhost".
        let connector = tokio_rustls::TlsConnector::from(client_config(&certs[0], &[b"http/1.1"]));
        let name = ServerName::try_from("localhost").expect("name");
        let tcp = TcpStream::connect(tls_addr).await.expect("connect");
        let s = tokio::time::timeout(T, connector.connect(name.clone(), tcp))
            .await
            .expect("in time")
            .expect("handshake");
        assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let resp = tokio::time::timeout(T, get(s, "/secure"))
            .await
            .expect("in time");
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
        assert!(
            resp.ends_with("GET /secure tls=true sni=localhost local=127.0.0.1"),
            "{resp}"
        );

        // A client offering h2 gets h2.
        let connector =
            tokio_rustls::TlsConnector::from(client_config(&certs[0], &[b"h2", b"http/1.1"]));
        let tcp = TcpStream::connect(tls_addr).await.expect("connect");
        let s = tokio::time::timeout(T, connector.connect(name, tcp))
            .await
            .expect("in time")
            .expect("handshake");
        assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        drop(s);

        // An idle open connection does not hold the shutdown up.
        let idle = TcpStream::connect(plain_addr).await.expect("connect");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let _ = stop_tx.send(());
        let res = tokio::time::timeout(Duration::from_secs(15), server)
            .await
            .expect("server stops in time")
            .expect("server task");
        assert!(res.is_ok());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        drop(idle);
        // The listeners are closed.
        assert!(TcpStream::connect(plain_addr).await.is_err());
    }

    /// Reads the body, then answers with its length (or the error).
    struct Echo;

    impl Handler for Echo {
        fn handle(
            &self,
            req: http::Request<hyper::body::Incoming>,
            _conn: Arc<ConnInfo>,
        ) -> HandlerFuture {
            use http_body_util::BodyExt;
            Box::pin(async move {
                if req.uri().path() == "/slow" {
                    // A handler busy for a while without reading the body
                    // (a slow PHP script): not a stalled body.
                    tokio::time::sleep(Duration::from_millis(900)).await;
                    return http::Response::new(full_body("slow done"));
                }
                match req.into_body().collect().await {
                    Ok(b) => http::Response::new(full_body(format!("got {}", b.to_bytes().len()))),
                    Err(e) => http::Response::new(full_body(format!("body error {e}"))),
                }
            })
        }
    }

    struct Server {
        addr: SocketAddr,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        join: tokio::task::JoinHandle<io::Result<()>>,
    }

    impl Server {
        async fn start(handler: Arc<dyn Handler>, limits: Limits) -> Server {
            let l = Listener::bind(([127, 0, 0, 1], 0).into(), None)
                .await
                .expect("bind");
            let addr = l.local_addr().expect("addr");
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let join = tokio::spawn(serve_with_limits(
                vec![l],
                handler,
                async move {
                    let _ = rx.await;
                },
                limits,
            ));
            Server {
                addr,
                stop: Some(tx),
                join,
            }
        }

        async fn stop(mut self) {
            if let Some(tx) = self.stop.take() {
                let _ = tx.send(());
            }
            let _ = tokio::time::timeout(Duration::from_secs(15), self.join).await;
        }
    }

    /// Everything the server sends until it closes (or `within` passes:
    /// then `closed` is false).
    async fn read_until_close(s: &mut TcpStream, within: Duration) -> (String, bool) {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
                Ok(Ok(0)) | Ok(Err(_)) => {
                    return (String::from_utf8_lossy(&out).into_owned(), true)
                }
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    async fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        // The server may answer (and close) before it has read it all.
        let _ = s.write_all(raw).await;
        let (text, closed) = read_until_close(&mut s, T).await;
        assert!(closed, "the server should close after refusing: {text}");
        text
    }

    #[tokio::test]
    async fn size_limits_get_status_pages() {
        let server = Server::start(Arc::new(Hello), Limits::default()).await;
        let a = server.addr;

        let long = format!("/{}", "a".repeat(10 * 1024));
        let r = exchange(
            a,
            format!("GET {long} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 414 "), "{r}");
        assert!(r.contains("Request-URI Too Long"), "an Apache page: {r}");
        assert!(r.to_ascii_lowercase().contains("connection: close"), "{r}");

        let big = "b".repeat(10 * 1024);
        let r = exchange(
            a,
            format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
        assert!(r.contains("Request Header Fields Too Large"), "{r}");

        let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
        let r = exchange(
            a,
            format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
        assert!(r.contains("Request Header Fields Too Large"), "{r}");

        // 101 fields (Host and 100 more): one over Apache's limit.
        let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
        let r = exchange(
            a,
            format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");

        // Past what hyper buffers: hyper's own 431 (no page).
        let huge: String = (0..20)
            .map(|i| format!("X-H{i}: {}\r\n", "c".repeat(8000)))
            .collect();
        let r = exchange(
            a,
            format!("GET / HTTP/1.1\r\nHost: x\r\n{huge}\r\n").as_bytes(),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");

        // A declared body over 1 GiB: 413 before a byte of it is read.
        let r = exchange(
            a,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741825\r\n\r\nabc",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 413 "), "{r}");
        assert!(r.contains("Request Entity Too Large"), "{r}");

        // Under every limit: served.
        let mut s = TcpStream::connect(a).await.expect("connect");
        let fits = format!("/{}", "a".repeat(8000));
        let resp = tokio::time::timeout(T, get(&mut s, &fits))
            .await
            .expect("in time");
        assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
        server.stop().await;
    }

    /// Answers 32 MiB.
    struct Big;

    impl Handler for Big {
        fn handle(
            &self,
            _req: http::Request<hyper::body::Incoming>,
            _conn: Arc<ConnInfo>,
        ) -> HandlerFuture {
            Box::pin(async { http::Response::new(full_body(vec![b'x'; 32 << 20])) })
        }
    }

    #[tokio::test]
    async fn a_client_that_never_reads_is_reset_after_the_idle_timeout() {
        let limits = Limits {
            idle_timeout: Duration::from_millis(400),
            ..Limits::default()
        };
        let server = Server::start(Arc::new(Big), limits).await;
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.set_recv_buffer_size(4096).expect("rcvbuf");
        let mut s = sock.connect(server.addr).await.expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("send");
        // Reads nothing while the server's writes stall and time out.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // A reset throws away what the server had queued: the client gets
        // at most what was already in flight to it, then the error.  (A
        // normal close would queue its FIN behind megabytes of unsent
        // data, for a window this client never opens, and keep them in
        // the server's kernel meanwhile.)
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0usize;
        let reset = loop {
            match tokio::time::timeout(T, s.read(&mut buf)).await {
                Err(_) | Ok(Ok(0)) => break false,
                Ok(Err(_)) => break true,
                Ok(Ok(n)) => total += n,
            }
        };
        assert!(reset, "ended without a reset after {total} bytes");
        assert!(total < (1 << 20), "{total} bytes still came");
        server.stop().await;
    }

    #[tokio::test]
    async fn chunked_requests_end_their_connection() {
        let server = Server::start(Arc::new(Echo), Limits::default()).await;
        // Content-Length with Transfer-Encoding: chunked wins (hyper drops
        // the length), and the connection ends after the answer even
        // though the client keeps it open: whatever a front proxy framed
        // differently is never read as a request.
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        let _ = s
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let (r, closed) = read_until_close(&mut s, T).await;
        assert!(closed, "{r}");
        assert!(
            r.starts_with("HTTP/1.1 200 ") && r.ends_with("got 0"),
            "{r}"
        );
        assert_eq!(r.matches("HTTP/1.1 ").count(), 1, "{r}");
        assert!(!r.contains("/smuggled"), "{r}");
        // A coding other than exactly `chunked`: 400.
        for te in ["chunked, chunked", "identity, chunked", "gzip"] {
            let raw =
                format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n");
            let r = exchange(server.addr, raw.as_bytes()).await;
            assert!(r.starts_with("HTTP/1.1 400 "), "{te}: {r}");
        }
        // HTTP/1.1 without Host, with two, with a bad one: 400.
        for head in [
            "GET / HTTP/1.1\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n",
            "GET / HTTP/1.1\r\nHost: a/b\r\n",
            "GET localhost:80 HTTP/1.1\r\nHost: localhost\r\n",
        ] {
            let r = exchange(server.addr, format!("{head}\r\n").as_bytes()).await;
            assert!(r.starts_with("HTTP/1.1 400 "), "{head:?}: {r}");
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn chunked_body_past_the_cap_ends_the_connection() {
        let limits = Limits {
            max_body_bytes: 1000,
            max_head_bytes: 8192,
            ..Limits::default()
        };
        let server = Server::start(Arc::new(Echo), limits).await;
        // Under the cap: read whole.
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        let _ = s
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n")
            .await;
        let (r, _) = read_until_close(&mut s, T).await;
        assert!(r.ends_with("got 16"), "{r}");

        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        let _ = s
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await;
        let chunk = format!("1000\r\n{}\r\n", "z".repeat(0x1000));
        let mut sent = 0usize;
        // Keeps sending until the server gives up (bounded: 1 MiB).
        while sent < (1 << 20) {
            if s.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        let (r, closed) = read_until_close(&mut s, T).await;
        assert!(closed, "the connection must end: {r}");
        assert!(
            !r.contains("got "),
            "the handler never saw a whole body: {r}"
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn stalled_body_is_aborted_but_a_slow_handler_is_not() {
        let limits = Limits {
            body_read_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let server = Server::start(Arc::new(Echo), limits).await;

        // 10 of 100 bytes, then nothing.
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        let _ = s
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            .await;
        let started = Instant::now();
        let (r, closed) = read_until_close(&mut s, T).await;
        assert!(closed && !r.contains("got 100"), "{r}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );

        // A body that keeps coming, slowly but within the timeout: read.
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        let _ = s
            .write_all(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\n",
            )
            .await;
        for b in [b"a", b"b", b"c", b"d"] {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let _ = s.write_all(b).await;
        }
        let (r, _) = read_until_close(&mut s, T).await;
        assert!(r.ends_with("got 4"), "{r}");

        // A handler that works for longer than the body timeout without
        // reading (its body is complete) is left alone, even when the
        // client has shut down its sending side meanwhile.
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        let _ = s
            .write_all(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .await;
        let _ = s.shutdown().await;
        let (r, _) = read_until_close(&mut s, T).await;
        assert!(
            r.starts_with("HTTP/1.1 200 ") && r.ends_with("slow done"),
            "{r}"
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn a_connection_must_bring_its_first_request_in_time() {
        let limits = Limits {
            header_read_timeout: Duration::from_millis(400),
            ..Limits::default()
        };
        let server = Server::start(Arc::new(Hello), limits).await;
        // The HTTP/2 preface, one byte at a time: bytes keep moving (no
        // idle timeout), hyper's header timer never starts.
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        let started = Instant::now();
        let mut closed = false;
        // 23 of its 24 bytes, 100 ms apart: 2.3 s of trickle.
        for b in b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r".iter() {
            if s.write_all(&[*b]).await.is_err() {
                closed = true;
                break;
            }
            let mut buf = [0u8; 64];
            match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    closed = true;
                    break;
                }
                _ => {}
            }
        }
        assert!(closed, "the trickling connection was not closed");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );

        // A slowloris head: hyper's header timeout.
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await;
        let started = Instant::now();
        let (_, closed) = read_until_close(&mut s, T).await;
        assert!(closed);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );

        // A prompt client is served.
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        let r = tokio::time::timeout(T, get(&mut s, "/ok"))
            .await
            .expect("in time");
        assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
        server.stop().await;
    }

    #[tokio::test]
    async fn a_pending_tls_handshake_does_not_hold_the_drain() {
        let (certs, key) = crate::tls::self_signed(&[]).expect("cert");
        let cfg = crate::tls::server_config(certs, key).expect("config");
        let l = Listener::bind(([127, 0, 0, 1], 0).into(), Some(cfg))
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let join = tokio::spawn(serve_with_limits(
            vec![l],
            Arc::new(Hello),
            async move {
                let _ = rx.await;
            },
            Limits::default(),
        ));
        // Connected, never says hello.
        let _stalled = TcpStream::connect(addr).await.expect("connect");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let _ = tx.send(());
        let res = tokio::time::timeout(Duration::from_secs(15), join)
            .await
            .expect("stops")
            .expect("task");
        assert!(res.is_ok());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    /// Answers 1 MiB with a body that counts, in `open`, the bodies that
    /// have been polled and not yet dropped (what a static file's open
    /// descriptor is to `static_files.rs`).
    struct Counting {
        open: Arc<AtomicUsize>,
    }

    struct CountingBody {
        open: Arc<AtomicUsize>,
        opened: bool,
        left: usize,
    }

    impl http_body::Body for CountingBody {
        type Data = bytes::Bytes;
        type Error = io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, io::Error>>> {
            if !self.opened {
                self.opened = true;
                self.open.fetch_add(1, Ordering::SeqCst);
            }
            if self.left == 0 {
                return Poll::Ready(None);
            }
            let n = self.left.min(16 * 1024);
            self.left -= n;
            Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from(
                vec![b'x'; n],
            )))))
        }
        fn is_end_stream(&self) -> bool {
            self.left == 0
        }
    }

    impl Drop for CountingBody {
        fn drop(&mut self) {
            if self.opened {
                self.open.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    impl Handler for Counting {
        fn handle(
            &self,
            _req: http::Request<hyper::body::Incoming>,
            _conn: Arc<ConnInfo>,
        ) -> HandlerFuture {
            use http_body_util::BodyExt;
            let body = CountingBody {
                open: Arc::clone(&self.open),
                opened: false,
                left: 1 << 20,
            };
            Box::pin(async move { http::Response::new(body.boxed()) })
        }
    }

    /// Waits (bounded by `T`) until `f` holds.
    async fn eventually(mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + T;
        while Instant::now() < deadline {
            if f() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        f()
    }

    #[tokio::test]
    async fn h2_streams_with_shut_windows_are_bounded_per_client_and_reset() {
        let open = Arc::new(AtomicUsize::new(0));
        let limits = Limits {
            send_timeout: Duration::from_secs(1),
            max_sending_per_client: 4,
            ..Limits::default()
        };
        let server = Server::start(
            Arc::new(Counting {
                open: Arc::clone(&open),
            }),
            limits,
        )
        .await;
        let before = htgate_telemetry::metrics::refusals_of("send_timeout");
        // An h2c client that never opens a stream's window.
        let tcp = TcpStream::connect(server.addr).await.expect("connect");
        let (client, connection) = h2::client::Builder::new()
            .initial_window_size(0)
            .handshake::<_, bytes::Bytes>(tcp)
            .await
            .expect("h2 handshake");
        let driver = tokio::spawn(connection);
        let mut client = client.ready().await.expect("ready");
        let mut answers = Vec::new();
        for _ in 0..20 {
            let req = http::Request::get("http://localhost/big")
                .body(())
                .expect("request");
            let (resp, _) = client.send_request(req, true).expect("send");
            answers.push(resp);
            client = client.ready().await.expect("ready");
        }
        // Every stream gets its head...
        for resp in answers.iter_mut() {
            let r = tokio::time::timeout(T, resp).await.expect("in time");
            assert_eq!(r.expect("response").status(), 200);
        }
        // ...but only the client's 4 places are ever polled ("opened").
        tokio::time::sleep(Duration::from_millis(300)).await;
        let held = open.load(Ordering::SeqCst);
        assert!((1..=4).contains(&held), "{held} bodies opened");
        // Nothing moves: after the send timeout the connection is reset,
        // and every body is dropped.
        let ended = tokio::time::timeout(T, driver).await;
        assert!(ended.is_ok(), "the stalled connection was not ended");
        assert!(eventually(|| open.load(Ordering::SeqCst) == 0).await);
        assert!(htgate_telemetry::metrics::refusals_of("send_timeout") > before);
        // Another client is served meanwhile and after.
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        let r = tokio::time::timeout(T, get(&mut s, "/"))
            .await
            .expect("in time");
        assert!(r.starts_with("HTTP/1.1 200 "), "{}", &r[..r.len().min(200)]);
        server.stop().await;
    }

    fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    #[tokio::test]
    async fn h2_ping_and_settings_floods_that_are_not_read_are_cut_off() {
        let limits = Limits {
            send_timeout: Duration::from_secs(1),
            ..Limits::default()
        };
        let server = Server::start(Arc::new(Hello), limits).await;
        for kind in [0x6u8, 0x4] {
            // A small receive buffer: the server's answers (PING ACKs,
            // SETTINGS ACKs) soon find the socket full.
            let sock = tokio::net::TcpSocket::new_v4().expect("socket");
            sock.set_recv_buffer_size(4096).expect("rcvbuf");
            sock.set_send_buffer_size(4096).expect("sndbuf");
            let mut s = sock.connect(server.addr).await.expect("connect");
            let mut hello = H2_PREFACE.to_vec();
            hello.extend(h2_frame(0x4, 0, 0, &[]));
            s.write_all(&hello).await.expect("preface");
            let one = if kind == 0x6 {
                h2_frame(0x6, 0, 0, &[7u8; 8])
            } else {
                h2_frame(0x4, 0, 0, &[0, 4, 0, 0, 0xff, 0xff])
            };
            let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1000).collect();
            let (mut rd, mut wr) = s.into_split();
            // Up to 2,000,000 frames (34 MB, more than the kernel buffers
            // between the two sockets hold), never reading an answer.  h2
            // keeps one answer pending and reads no further frame until it
            // is written, so the server's memory does not grow with them.
            let writer = tokio::spawn(async move {
                let mut sent = 0usize;
                for _ in 0..2000 {
                    match tokio::time::timeout(T, wr.write_all(&batch)).await {
                        Ok(Ok(())) => sent += 1000,
                        _ => break,
                    }
                }
                (sent, wr)
            });
            // The server's writes stall; within the send timeout (and a
            // margin) it ends the connection.
            let (sent, _wr) = tokio::time::timeout(Duration::from_secs(20), writer)
                .await
                .expect("the flood ends")
                .expect("writer task");
            assert!(
                sent < 2_000_000,
                "kind {kind}: the server read all {sent} frames"
            );
            let mut buf = vec![0u8; 1 << 16];
            let closed = loop {
                match tokio::time::timeout(T, rd.read(&mut buf)).await {
                    Err(_) => break false,
                    Ok(Ok(0)) | Ok(Err(_)) => break true,
                    Ok(Ok(_)) => {}
                }
            };
            assert!(closed, "kind {kind}: the flooding connection is still open");
        }
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        let r = tokio::time::timeout(T, get(&mut s, "/"))
            .await
            .expect("in time");
        assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
        server.stop().await;
    }

    #[tokio::test]
    async fn h2_rapid_reset_goaway_is_counted() {
        let server = Server::start(Arc::new(Hello), Limits::default()).await;
        let before = htgate_telemetry::metrics::refusals_of("h2_goaway");
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        let mut out = H2_PREFACE.to_vec();
        out.extend(h2_frame(0x4, 0, 0, &[]));
        let mut block = vec![0x82, 0x86, 0x84, 0x01, 9];
        block.extend_from_slice(b"localhost");
        for i in 0..200u32 {
            let id = 1 + 2 * i;
            out.extend(h2_frame(0x1, 0x5, id, &block));
            out.extend(h2_frame(0x3, 0, id, &8u32.to_be_bytes()));
        }
        let _ = s.write_all(&out).await;
        let (_, closed) = read_until_close(&mut s, T).await;
        assert!(closed);
        assert!(eventually(|| htgate_telemetry::metrics::refusals_of("h2_goaway") > before).await);
        server.stop().await;
    }
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

#[cfg(test)]
mod bind_error_tests {
    use super::*;

    #[test]
    fn a_busy_port_says_how_to_choose_another() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let e = std::net::TcpListener::bind(addr).expect_err("busy");
        let text = bind_error(addr, &e, "--http ADDR").to_string();
        assert!(
            text.starts_with(&format!("cannot listen on {addr}: ")),
            "{text}"
        );
        assert!(
            text.contains("choose a free port with --http ADDR"),
            "{text}"
        );
    }
}
