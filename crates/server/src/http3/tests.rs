//! HTTP/3 listener tests: answers and Alt-Svc, the body cap, a malformed
//! Content-Length, the per-client cap, and graceful shutdown with a
//! request in progress.

use crate::h3_client::Session;
use crate::limits::Limits;
use crate::listener::{serve_with_limits, Listener};
use crate::{full_body, ConnInfo, Handler, HandlerFuture, RequestBody};
use bytes::Bytes;
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// Answers with what it saw; `/slow` waits a second first; a body is
/// read to its end and its length (or error) told.
struct Echo;

impl Handler for Echo {
    fn handle(&self, req: http::Request<RequestBody>, conn: Arc<ConnInfo>) -> HandlerFuture {
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            if parts.uri.path() == "/slow" {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let read = match body.collect().await {
                Ok(b) => format!("{} bytes", b.to_bytes().len()),
                Err(e) => format!("body error: {e}"),
            };
            let text = format!(
                "{} {} {:?} tls={} sni={} {read}",
                parts.method,
                parts.uri.path(),
                parts.version,
                conn.tls,
                conn.sni.as_deref().unwrap_or("-"),
            );
            http::Response::new(full_body(text))
        })
    }
}

fn tls_pair() -> (Arc<rustls::ServerConfig>, rustls::ClientConfig) {
    let (certs, key) = crate::tls::self_signed(&["h3.test".to_string()]).expect("cert");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs[0].clone()).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(crate::tls::provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (
        crate::tls::server_config(certs, key).expect("server"),
        client,
    )
}

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    join: tokio::task::JoinHandle<std::io::Result<()>>,
    client: rustls::ClientConfig,
}

async fn start(limits: Limits) -> Server {
    let (server, client) = tls_pair();
    let l = Listener::bind(SocketAddr::from(([127, 0, 0, 1], 0)), Some(server))
        .await
        .expect("bind")
        .with_http3(true)
        .expect("udp");
    let addr = l.http3_addr().expect("h3 addr");
    assert_eq!(Some(addr), l.local_addr().ok(), "same port over UDP");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let join = tokio::spawn(serve_with_limits(
        vec![l],
        Arc::new(Echo),
        async move {
            let _ = rx.await;
        },
        limits,
    ));
    Server {
        addr,
        stop: Some(tx),
        join,
        client,
    }
}

fn get(path: &str) -> http::Request<()> {
    http::Request::get(format!("https://h3.test{path}"))
        .body(())
        .expect("request")
}

/// A POST to `/up`, with `Content-Length: length` when given.
fn post(length: Option<&str>) -> http::Request<()> {
    let mut b = http::Request::post("https://h3.test/up");
    if let Some(l) = length {
        b = b.header("content-length", l);
    }
    b.body(()).expect("request")
}

async fn session(s: &Server) -> Session {
    tokio::time::timeout(T, Session::connect(s.addr, "h3.test", s.client.clone()))
        .await
        .expect("in time")
        .expect("connect")
}

#[tokio::test]
async fn a_request_over_http3_reaches_the_handler_with_its_sni() {
    let s = start(Limits::default()).await;
    let mut c = session(&s).await;
    let a = c.request(get("/x"), None).await.expect("answer");
    assert_eq!(a.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&a.body),
        "GET /x HTTP/3.0 tls=true sni=h3.test 0 bytes"
    );
    assert!(a.headers.contains_key(http::header::DATE));
    assert_eq!(
        a.headers
            .get(http::header::CONTENT_LENGTH)
            .map(|v| v.as_bytes()),
        Some(a.body.len().to_string().as_bytes())
    );
    // Several requests on one connection.
    let post = post(Some("5"));
    let a = c
        .request(post, Some(Bytes::from_static(b"hello")))
        .await
        .expect("answer");
    assert!(
        String::from_utf8_lossy(&a.body).ends_with("5 bytes"),
        "{:?}",
        a.body
    );
    c.close();
}

#[tokio::test]
async fn bodies_over_the_cap_or_unlike_their_length_are_refused() {
    let limits = Limits {
        max_body_bytes: 10,
        ..Limits::default()
    };
    let s = start(limits).await;
    let mut c = session(&s).await;
    // Declared over the cap: 413 before the handler runs.
    let big = post(Some("11"));
    let a = c
        .request(big, Some(Bytes::from_static(b"0123456789a")))
        .await
        .expect("answer");
    assert_eq!(a.status, 413);
    // Not declared: the body stops at the cap.
    let chunked = post(None);
    let a = c
        .request(chunked, Some(Bytes::from_static(b"0123456789abcdef")))
        .await
        .expect("answer");
    assert!(
        String::from_utf8_lossy(&a.body).contains("over the cap"),
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    // A body longer than its Content-Length is malformed.
    let liar = post(Some("2"));
    let a = c
        .request(liar, Some(Bytes::from_static(b"12345")))
        .await
        .expect("answer");
    assert!(
        String::from_utf8_lossy(&a.body).contains("longer than its Content-Length"),
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    // A malformed Content-Length: 400.
    let bad = post(Some("1x"));
    let a = c.request(bad, None).await.expect("answer");
    assert_eq!(a.status, 400);
    c.close();
}

#[tokio::test]
async fn a_client_over_its_connection_share_is_refused() {
    let limits = Limits {
        max_connections_per_ip: 1,
        ..Limits::default()
    };
    let s = start(limits).await;
    let mut first = session(&s).await;
    assert_eq!(
        first.request(get("/"), None).await.expect("answer").status,
        200
    );
    let second = tokio::time::timeout(T, Session::connect(s.addr, "h3.test", s.client.clone()))
        .await
        .expect("in time");
    assert!(
        second.is_err(),
        "a second connection from the same address was admitted"
    );
    first.close();
}

#[tokio::test]
async fn shutdown_lets_a_request_in_progress_finish_then_closes() {
    let mut s = start(Limits::default()).await;
    let mut c = session(&s).await;
    let slow = tokio::spawn(async move {
        let a = c.request(get("/slow"), None).await;
        (a, c)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Some(tx) = s.stop.take() {
        let _ = tx.send(());
    }
    let (answer, c) = tokio::time::timeout(T, slow)
        .await
        .expect("in time")
        .expect("task");
    let answer = answer.expect("the request in progress is answered");
    assert_eq!(answer.status, 200);
    tokio::time::timeout(T, c.closed())
        .await
        .expect("the connection ends");
    tokio::time::timeout(T, s.join)
        .await
        .expect("serve ends")
        .expect("task")
        .expect("io");
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let s = start(limits).await;
    let mut c = session(&s).await;
    assert_eq!(c.request(get("/"), None).await.expect("answer").status, 200);
    tokio::time::timeout(T, c.closed())
        .await
        .expect("closed when idle");
}

#[tokio::test]
async fn over_half_the_cap_clients_prove_their_address_and_over_the_cap_are_refused() {
    // Three places: the TCP side's accept loop holds one while it waits
    // (room is taken before `accept`), leaving two.
    let limits = Limits {
        max_connections: 3,
        ..Limits::default()
    };
    let s = start(limits).await;
    let mut first = session(&s).await;
    assert_eq!(
        first.request(get("/"), None).await.expect("answer").status,
        200
    );
    // One place left of two: a Retry first, then admitted.
    let retries = htgate_telemetry::metrics::quic_retries();
    let mut second = session(&s).await;
    assert_eq!(
        second.request(get("/"), None).await.expect("answer").status,
        200
    );
    assert!(
        htgate_telemetry::metrics::quic_retries() > retries,
        "no Retry was sent"
    );
    // No place left: refused at once (UDP has no backlog to wait in).
    let refused = htgate_telemetry::metrics::refusals_of("connection_cap");
    let third = tokio::time::timeout(T, Session::connect(s.addr, "h3.test", s.client.clone()))
        .await
        .expect("in time");
    assert!(third.is_err(), "a connection over the cap was admitted");
    assert!(htgate_telemetry::metrics::refusals_of("connection_cap") > refused);
    first.close();
    second.close();
}
