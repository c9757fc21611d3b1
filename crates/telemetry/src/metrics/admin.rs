//! The admin listener: `GET /metrics` and nothing else.
//!
//! Plain HTTP/1.1 on its own socket (`[admin] listen`, meant for loopback
//! or a management network), outside the site listeners: no `.htaccess`,
//! no Host routing, and its connections are not counted as clients'.

use http::{Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The content type of the OpenMetrics text format (Prometheus asks for
/// it and reads it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Scrapers are few: past this many open connections new ones are closed.
const MAX_CONNECTIONS: usize = 32;

/// A scraper that does not send its request within this time is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

type Resp = http::Response<http_body_util::Full<bytes::Bytes>>;

fn text(status: StatusCode, body: &'static str) -> Resp {
    let mut resp = http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
        body.as_bytes(),
    )));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

async fn answer(method: Method, path: String, server: Arc<Registry>) -> Resp {
    if path != "/metrics" {
        return text(
            StatusCode::NOT_FOUND,
            "not found: the admin listener serves /metrics only\n",
        );
    }
    if method != Method::GET && method != Method::HEAD {
        let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n");
        resp.headers_mut().insert(
            http::header::ALLOW,
            http::HeaderValue::from_static("GET, HEAD"),
        );
        return resp;
    }
    // The server's collector reads the ACME store on disk: off the runtime.
    let rendered = tokio::task::spawn_blocking(move || super::render(Some(&server))).await;
    match rendered {
        Ok(body) => {
            let mut resp = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(CONTENT_TYPE),
            );
            resp
        }
        Err(e) => {
            tracing::error!(target: "admin", "rendering the metrics failed: {e}");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "rendering the metrics failed\n",
            )
        }
    }
}

/// Binds the admin address (a start fails when it cannot).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `/metrics` on `listener` until the task is aborted; `server`
/// holds the running server's own collectors.
pub fn spawn(listener: TcpListener, server: Registry) -> tokio::task::JoinHandle<()> {
    let server = Arc::new(server);
    let room = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(target: "admin", error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = room.clone().try_acquire_owned() else {
                tracing::debug!(target: "admin", %remote, "too many admin connections; closing");
                continue;
            };
            let server = server.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let server = server.clone();
                        let method = req.method().clone();
                        let path = req.uri().path().to_string();
                        async move {
                            Ok::<_, std::convert::Infallible>(answer(method, path, server).await)
                        }
                    });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    tracing::debug!(target: "admin", %remote, error = %e, "admin connection ended with an error");
                }
            });
        }
    })
}
