//! A small HTTP/3 client (quinn + h3) for tests and benchmarks: one QUIC
//! connection, requests in turn on it.  Not used by the server.

use bytes::{Buf, Bytes};
use rustls_pki_types::CertificateDer;
use std::net::SocketAddr;
use std::sync::Arc;

/// An answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

/// One HTTP/3 connection.
pub struct Session {
    conn: quinn::Connection,
    send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    driver: tokio::task::JoinHandle<()>,
    /// Kept for the connection's lifetime: its socket.
    _endpoint: quinn::Endpoint,
}

impl Session {
    /// Connects to `addr` with SNI `sni` (an IP address: none);
    /// `tls` says which certificates to trust (ALPN is set here).
    pub async fn connect(
        addr: SocketAddr,
        sni: &str,
        mut tls: rustls::ClientConfig,
    ) -> Result<Session, String> {
        tls.alpn_protocols = vec![b"h3".to_vec()];
        tls.enable_early_data = false;
        let quic =
            quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
        let local = if addr.is_ipv4() {
            SocketAddr::from(([127, 0, 0, 1], 0))
        } else {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))
        };
        let endpoint = quinn::Endpoint::client(local).map_err(|e| e.to_string())?;
        let conn = endpoint
            .connect_with(quinn::ClientConfig::new(Arc::new(quic)), addr, sni)
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| format!("QUIC handshake: {e}"))?;
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        Ok(Session {
            conn,
            send,
            driver,
            _endpoint: endpoint,
        })
    }

    /// The chain the server sent in the handshake.
    pub fn served_chain(&self) -> Vec<CertificateDer<'static>> {
        self.conn
            .peer_identity()
            .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
            .map(|b| *b)
            .unwrap_or_default()
    }

    /// Sends `req` (its URI absolute: `https://host/path`) with `body`
    /// and reads the whole answer.
    pub async fn request(
        &mut self,
        req: http::Request<()>,
        body: Option<Bytes>,
    ) -> Result<Answer, String> {
        request_on(&mut self.send, req, body).await
    }

    /// A handle that sends requests on this connection, concurrently with
    /// other handles.
    pub fn handle(&self) -> Handle {
        Handle(self.send.clone())
    }

    /// Why the connection ended, once it has (waits for it).
    pub async fn closed(&self) -> quinn::ConnectionError {
        self.conn.closed().await
    }

    /// Closes the connection.
    pub fn close(self) {
        self.conn.close(quinn::VarInt::from_u32(0x100), b"");
        self.driver.abort();
    }
}

/// Sends requests on a [`Session`]'s connection.
#[derive(Clone)]
pub struct Handle(h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>);

impl Handle {
    /// As [`Session::request`].
    pub async fn request(
        &mut self,
        req: http::Request<()>,
        body: Option<Bytes>,
    ) -> Result<Answer, String> {
        request_on(&mut self.0, req, body).await
    }
}

async fn request_on(
    send: &mut h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    req: http::Request<()>,
    body: Option<Bytes>,
) -> Result<Answer, String> {
    let mut stream = send.send_request(req).await.map_err(|e| e.to_string())?;
    if let Some(b) = body {
        stream.send_data(b).await.map_err(|e| e.to_string())?;
    }
    // The server may answer and stop reading before the end of the
    // request arrives (RFC 9114 §4.1): the answer still comes.
    let _ = stream.finish().await;
    let resp = stream.recv_response().await.map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await.map_err(|e| e.to_string())? {
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    let (parts, ()) = resp.into_parts();
    Ok(Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}
