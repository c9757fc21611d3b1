//! One request over HTTP/1.1, HTTP/2 (TLS, hyper's client) or HTTP/3
//! (quinn + h3), for tests that compare a server's answers across
//! protocols, and the chain a QUIC handshake gets.

use super::probe::accept_all;
use bytes::Bytes;
use htgate_server::h3_client::Session;
use http_body_util::BodyExt;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The protocols compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    H1,
    H2,
    H3,
}

/// An answer, whatever carried it.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One request: `method` `path` for `host` (the Host field over HTTP/1.1,
/// `:authority` otherwise), SNI `sni`, with `headers`.
pub(crate) async fn request(
    protocol: Protocol,
    addr: SocketAddr,
    sni: &str,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
) -> Result<Reply, String> {
    let fut = async {
        match protocol {
            Protocol::H3 => h3_request(addr, sni, method, host, path, headers).await,
            _ => tcp_request(protocol, addr, sni, method, host, path, headers).await,
        }
    };
    tokio::time::timeout(TIMEOUT, fut)
        .await
        .map_err(|_| format!("{protocol:?} {method} {path}: no answer in time"))?
}

fn build(
    method: &str,
    uri: &str,
    headers: &[(String, String)],
) -> Result<http::request::Builder, String> {
    let mut b = http::Request::builder()
        .method(http::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?)
        .uri(uri);
    for (n, v) in headers {
        b = b.header(n.as_str(), v.as_str());
    }
    Ok(b)
}

async fn tcp_request(
    protocol: Protocol,
    addr: SocketAddr,
    sni: &str,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
) -> Result<Reply, String> {
    let alpn: &[u8] = if protocol == Protocol::H2 {
        b"h2"
    } else {
        b"http/1.1"
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(accept_all(&[alpn])));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let io = hyper_util::rt::TokioIo::new(tls);
    let resp = if protocol == Protocol::H2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = build(method, &format!("https://{host}{path}"), headers)?
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        send.send_request(req).await.map_err(|e| e.to_string())?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut all = headers.to_vec();
        all.push(("host".into(), host.into()));
        let req = build(method, path, &all)?
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        send.send_request(req).await.map_err(|e| e.to_string())?
    };
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.to_vec(),
    })
}

async fn h3_request(
    addr: SocketAddr,
    sni: &str,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
) -> Result<Reply, String> {
    let mut session = Session::connect(addr, sni, accept_all(&[])).await?;
    let req = build(method, &format!("https://{host}{path}"), headers)?
        .body(())
        .map_err(|e| e.to_string())?;
    let answer = session.request(req, None).await;
    session.close();
    let answer = answer?;
    Ok(Reply {
        status: answer.status,
        headers: answer.headers,
        body: answer.body,
    })
}

/// The chain a QUIC handshake with `sni` gets.
pub(crate) async fn quic_served_chain(
    addr: SocketAddr,
    sni: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let session = tokio::time::timeout(TIMEOUT, Session::connect(addr, sni, accept_all(&[])))
        .await
        .map_err(|_| "QUIC handshake not done in time".to_string())??;
    let chain = session.served_chain();
    session.close();
    Ok(chain)
}
