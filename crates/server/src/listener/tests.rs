//! Tests of the listeners and the connection loop: plain and TLS, the
//! limits, the timeouts, HTTP/2 abuse, graceful shutdown.

use super::*;
use crate::{full_body, ConnInfo, HandlerFuture};
use rustls_pki_types::ServerName;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(10);

struct Hello;

impl Handler for Hello {
    fn handle(&self, req: http::Request<crate::RequestBody>, conn: Arc<ConnInfo>) -> HandlerFuture {
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
        req: http::Request<crate::RequestBody>,
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
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
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
    // Past PARSER_MAX_HEADERS: hyper's own 431, without a page.
    assert!(!r.contains("<!DOCTYPE"), "{r}");

    // 101 fields (Host and 100 more): one over Apache's limit, our page.
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = exchange(
        a,
        format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    assert!(r.contains("<!DOCTYPE"), "{r}");

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
        _req: http::Request<crate::RequestBody>,
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
        let raw = format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n");
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
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\n")
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
        .write_all(
            b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        )
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
        _req: http::Request<crate::RequestBody>,
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
