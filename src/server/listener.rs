//! Listening sockets and the connection loop: plain TCP or TLS (rustls),
//! HTTP/1.1 and HTTP/2 (ALPN on TLS, the h2c preface on plain TCP), each
//! request handed to a [`Handler`].
//!
//! Every connection runs in its own task: its errors are logged at debug
//! level and end only that connection.  Slow or idle clients are bounded by
//! the TLS handshake timeout, hyper's HTTP/1 header read timeout (which also
//! covers idle keep-alive), and an idle timeout for connections with no
//! request in progress (this covers idle HTTP/2 connections and clients
//! that stall before the first request line).

use super::status_page::error_response;
use super::{ConnInfo, Handler};
use futures_util::FutureExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How long a client has to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send a complete HTTP/1 request head (and how
/// long an idle keep-alive connection is kept).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection with no request in progress and no bytes moving for this
/// long is closed (Apache's default `Timeout`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the idle check runs.
const IDLE_CHECK_EVERY: Duration = Duration::from_secs(5);
/// How long in-flight connections get to finish after shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after an accept error such as EMFILE before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// HTTP/2 streams per connection (Apache's `H2MaxSessionStreams`).
const H2_MAX_STREAMS: u32 = 100;

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
}

fn make_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS);
    builder
}

/// When bytes last moved on a connection.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
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
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// The connection's byte stream, noting activity for the idle check.
struct ConnIo {
    inner: Stream,
    activity: Arc<Activity>,
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
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.touch();
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
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
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
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
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

/// Waits until the hard-stop flag is raised (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// One accepted connection, from the TLS handshake to its end.
async fn run_connection(
    stream: TcpStream,
    remote: SocketAddr,
    fallback_local: SocketAddr,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    watcher: Watcher,
    mut hard_stop: watch::Receiver<bool>,
) {
    // Small responses should not wait for Nagle; failure only costs speed.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%remote, error = %e, "cannot set TCP_NODELAY");
    }
    let local = stream.local_addr().unwrap_or(fallback_local);
    let is_tls = tls.is_some();
    let (inner, sni) = match tls {
        None => (Stream::Plain(stream), None),
        Some(acceptor) => {
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let result = tokio::select! {
                r = handshake => r,
                _ = stopped(&mut hard_stop) => return,
            };
            match result {
                Ok(Ok(s)) => {
                    let sni = s.get_ref().1.server_name().map(str::to_owned);
                    (Stream::Tls(Box::new(s)), sni)
                }
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "TLS handshake timed out");
                    return;
                }
            }
        }
    };

    let info = Arc::new(ConnInfo {
        remote,
        local,
        tls: is_tls,
        sni,
        trusted_proxy: false,
    });
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(ConnIo {
        inner,
        activity: Arc::clone(&activity),
    });
    let in_flight = Arc::new(AtomicUsize::new(0));
    let handler = Arc::clone(&shared.handler);
    let counter = Arc::clone(&in_flight);
    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let guard = InFlight::enter(&counter);
        let method = req.method().clone();
        // The handler is the engine's code; a panic in it must cost one
        // request (a 500), not the connection or the process.
        let call =
            std::panic::catch_unwind(AssertUnwindSafe(|| handler.handle(req, Arc::clone(&info))));
        async move {
            let outcome = match call {
                Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await,
                Err(panic) => Err(panic),
            };
            let resp = match outcome {
                Ok(resp) => resp,
                Err(_) => {
                    tracing::error!(%remote, "request handler panicked");
                    error_response(http::StatusCode::INTERNAL_SERVER_ERROR, &method, None)
                }
            };
            drop(guard);
            Ok::<_, std::convert::Infallible>(resp)
        }
    });

    let conn = watcher.watch(shared.builder.serve_connection(io, service));
    tokio::pin!(conn);
    let mut idle_check = tokio::time::interval(IDLE_CHECK_EVERY);
    idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            res = &mut conn => {
                if let Err(e) = res {
                    tracing::debug!(%remote, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = idle_check.tick() => {
                if in_flight.load(Ordering::Relaxed) == 0 && activity.idle_for() >= IDLE_TIMEOUT {
                    tracing::debug!(%remote, "closing idle connection");
                    break;
                }
            }
            _ = stopped(&mut hard_stop) => {
                tracing::debug!(%remote, "closing connection at the end of the drain");
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
    hard_stop: &watch::Receiver<bool>,
) {
    let fallback_local = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    loop {
        match listener.tcp.accept().await {
            Ok((stream, remote)) => {
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
                    hard_stop.clone(),
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
/// accepting and drains in-flight connections (graceful, bounded by a drain
/// timeout of 10 s, after which the remaining connections are closed).
pub async fn serve(
    listeners: Vec<Listener>,
    handler: Arc<dyn Handler>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let shared = Arc::new(Shared {
        builder: make_builder(),
        handler,
    });
    let graceful = GracefulShutdown::new();
    let (hard_tx, hard_rx) = watch::channel(false);
    {
        let loops = futures_util::future::join_all(
            listeners
                .iter()
                .map(|l| accept_loop(l, &shared, &graceful, &hard_rx)),
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
    tracing::debug!(connections = graceful.count(), "shutting down; draining");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
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
    use crate::server::{full_body, HandlerFuture};
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
}
