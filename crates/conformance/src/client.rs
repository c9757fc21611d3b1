//! The oracle's HTTP client (`send_request`, `parse_response`): raw bytes
//! over TCP or TLS so that the request line goes out byte for byte, the
//! whole answer read until the server closes, then parsed leniently.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::case::{ip_re, Request};
use crate::pycompat::{
    bytes_strip, decode_value, is_digit_str, py_find, py_int, py_int_bytes, py_slice,
};

/// The oracle's `REQUEST_TIMEOUT`: Python's socket timeout, which bounds
/// each operation (connect, handshake, each send and receive), not the
/// whole exchange.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An answer as the oracle's `Response` holds it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Response {
    /// 0: no HTTP answer (see `error`).
    pub status: u16,
    /// `(lower-case name, value)` in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub error: Option<String>,
    pub client_port: Option<u16>,
}

impl Response {
    /// Every value of a header, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value of a header.
    pub(crate) fn first(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The bytes the oracle's `send_request` sends: request line with the
/// target as written, Host (unless a `| Host:` part replaces it), the
/// header parts in order, `Content-Length: 0` for POST/PUT/PATCH and
/// `Connection: close`, unless the parts already give those.
pub(crate) fn build_request(req: &Request) -> Vec<u8> {
    let names: Vec<String> = req.headers.iter().map(|(n, _)| n.to_lowercase()).collect();
    let has = |n: &str| names.iter().any(|x| x == n);
    let mut lines = vec![format!("{} {} HTTP/1.1", req.method, req.target)];
    if !has("host") {
        lines.push(format!("Host: {}", req.authority));
    }
    for (n, v) in &req.headers {
        lines.push(format!("{n}: {v}"));
    }
    if ["POST", "PUT", "PATCH"].contains(&req.method.as_str())
        && !has("content-length")
        && !has("transfer-encoding")
    {
        lines.push("Content-Length: 0".to_string());
    }
    if !has("connection") {
        lines.push("Connection: close".to_string());
    }
    format!("{}\r\n\r\n", lines.join("\r\n")).into_bytes()
}

/// Accepts any certificate, as the oracle's `ssl.CERT_NONE` context does;
/// handshake signatures are still checked, as OpenSSL does.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Sends requests as the oracle does.
#[derive(Clone)]
pub struct Client {
    /// Sends the URL's host as SNI.
    pub(crate) with_sni: TlsConnector,
    /// For IP-address hosts, which the oracle sends without SNI.
    without_sni: TlsConnector,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    pub fn new() -> Self {
        let make = |sni: bool| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut cfg = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
                .with_no_client_auth();
            // Python's ssl context offers no ALPN at all; neither do we, so
            // the server sees the same ClientHello shape as under the oracle
            // (and cannot pick h2, which needs ALPN over TLS).
            cfg.alpn_protocols = Vec::new();
            cfg.enable_sni = sni;
            TlsConnector::from(Arc::new(cfg))
        };
        Client {
            with_sni: make(true),
            without_sni: make(false),
        }
    }

    /// The oracle's `send_request`, to `127.0.0.1` on the port matching the
    /// URL's scheme.
    pub(crate) async fn send(&self, req: &Request, http_port: u16, https_port: u16) -> Response {
        let port = if req.scheme == "https" {
            https_port
        } else {
            http_port
        };
        let data = build_request(req);
        let mut resp = Response::default();
        let mut raw = Vec::new();
        if let Err(e) = self.exchange(req, port, &data, &mut raw, &mut resp).await {
            // As the oracle: an error after part of the answer came back
            // (a timeout, a TLS EOF without close_notify) keeps that part.
            if raw.is_empty() {
                resp.error = Some(e);
            }
        }
        if !raw.is_empty() {
            parse_response(&raw, &mut resp, req.method == "HEAD");
        } else if resp.error.is_none() {
            resp.error = Some("connection closed without an answer".to_string());
        }
        resp
    }

    async fn exchange(
        &self,
        req: &Request,
        port: u16,
        data: &[u8],
        raw: &mut Vec<u8>,
        resp: &mut Response,
    ) -> Result<(), String> {
        let tcp = timed(TcpStream::connect(("127.0.0.1", port))).await?;
        resp.client_port = tcp.local_addr().ok().map(|a| a.port());
        if req.scheme != "https" {
            return send_and_read(tcp, data, raw).await;
        }
        // `sni = req.host if not _IP_RE.match(req.host.lower()) else None`
        let (connector, name) = if ip_re().is_match(&req.host.to_lowercase()) {
            let ip = req.host.trim_matches(['[', ']']).parse::<IpAddr>();
            let name = match ip {
                Ok(ip) => ServerName::IpAddress(ip.into()),
                Err(_) => ServerName::try_from("localhost").expect("valid name"),
            };
            (&self.without_sni, name)
        } else {
            let name = ServerName::try_from(req.host.clone())
                .map_err(|e| format!("cannot send SNI {:?} with rustls: {e}", req.host))?;
            (&self.with_sni, name)
        };
        let tls = timed(connector.connect(name, tcp)).await?;
        send_and_read(tls, data, raw).await
    }
}

/// One socket operation under the oracle's per-operation timeout.
async fn timed<T>(fut: impl std::future::Future<Output = std::io::Result<T>>) -> Result<T, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Err(_) => Err("TimeoutError: timed out".to_string()),
        Ok(Err(e)) => Err(format!("{:?}: {e}", e.kind())),
        Ok(Ok(v)) => Ok(v),
    }
}

/// `sock.sendall(data)`, then `recv` until EOF, appending to `raw`.
async fn send_and_read<S>(mut s: S, data: &[u8], raw: &mut Vec<u8>) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    timed(s.write_all(data)).await?;
    timed(s.flush()).await?;
    let mut buf = vec![0u8; 65536];
    loop {
        let n = timed(s.read(&mut buf)).await?;
        if n == 0 {
            return Ok(());
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

/// The oracle's `parse_response`: status line, headers (names lower case,
/// values stripped and decoded), then the body: none for HEAD, de-chunked
/// for `Transfer-Encoding: chunked`, cut at Content-Length otherwise.
pub(crate) fn parse_response(raw: &[u8], resp: &mut Response, head: bool) {
    let sep = match py_find(raw, b"\r\n\r\n", 0) {
        -1 => {
            resp.error = Some("incomplete response".to_string());
            raw.len()
        }
        i => i as usize,
    };
    let head_lines: Vec<&[u8]> = split_bytes(&raw[..sep], b"\r\n");
    let body = py_slice(raw, sep as i128 + 4, raw.len() as i128);
    let status_line = head_lines[0];
    // rb"^HTTP/\d\.\d (\d{3})" (bytes pattern: ASCII digits)
    let ok = status_line.len() >= 12
        && status_line.starts_with(b"HTTP/")
        && status_line[5].is_ascii_digit()
        && status_line[6] == b'.'
        && status_line[7].is_ascii_digit()
        && status_line[8] == b' '
        && status_line[9..12].iter().all(u8::is_ascii_digit);
    if !ok {
        let shown: Vec<u8> = status_line.iter().take(80).copied().collect();
        resp.error = Some(format!("bad status line {}", py_bytes_repr(&shown)));
        return;
    }
    resp.status = std::str::from_utf8(&status_line[9..12])
        .expect("ascii")
        .parse()
        .expect("three digits");
    for hl in &head_lines[1..] {
        let Some(colon) = hl.iter().position(|&b| b == b':') else {
            continue;
        };
        // name.strip().decode("latin-1").lower()
        let name: String = bytes_strip(&hl[..colon])
            .iter()
            .map(|&b| b as char)
            .collect();
        resp.headers.push((
            name.to_lowercase(),
            decode_value(bytes_strip(&hl[colon + 1..])),
        ));
    }
    if head {
        resp.body = Vec::new();
        return;
    }
    let te = resp.first("transfer-encoding").unwrap_or("").to_lowercase();
    if te.contains("chunked") {
        resp.body = dechunk(body);
    } else {
        let mut body = body;
        if let Some(cl) = resp.first("content-length") {
            if is_digit_str(cl) {
                if let Some(n) = py_int(cl, 10) {
                    body = py_slice(body, 0, n);
                }
            }
        }
        resp.body = body.to_vec();
    }
}

/// The oracle's chunked decoding loop, with Python's slice and `int(x, 16)`
/// rules (a size line may carry `;extensions`; a bad size ends the body).
fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos: i128 = 0;
    // Python would loop for ever on some negative sizes; a bound keeps a
    // broken server from hanging the test instead.
    for _ in 0..=body.len() {
        let eol = py_find(body, b"\r\n", pos);
        if eol < 0 {
            break;
        }
        let line = py_slice(body, pos, eol);
        let first = line.split(|&b| b == b';').next().unwrap_or(b"");
        let Some(size) = py_int_bytes(first, 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        out.extend_from_slice(py_slice(body, eol + 2, eol + 2 + size));
        pos = eol + 2 + size + 2;
    }
    out
}

/// `bytes.split(sep)`.
fn split_bytes<'a>(b: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + sep.len() <= b.len() {
        if &b[i..i + sep.len()] == sep {
            out.push(&b[start..i]);
            i += sep.len();
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&b[start..]);
    out
}

/// Python's `repr()` of a bytes value, for messages.
fn py_bytes_repr(b: &[u8]) -> String {
    let mut s = String::from("b'");
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\'' => s.push_str("\\'"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('\'');
    s
}

#[cfg(test)]
mod tests {
    //! The client against tiny servers started here: raw TCP and TLS
    //! listeners that record what they got and answer fixed bytes.

    use super::*;
    use std::net::SocketAddr;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    fn request(line: &str) -> Request {
        let text = format!("-- requests --\n{line}\n");
        let case = crate::case::parse_case_bytes(text.as_bytes(), "t.case", "t").expect("parses");
        case.requests[0].clone()
    }

    /// What the fake server saw: the request bytes and the SNI name.
    type Seen = (Vec<u8>, Option<String>);

    /// Reads one request head (until the blank line or EOF).
    async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    }

    /// A plain server answering each connection with `answer` then closing
    /// (an empty `answer`: close without a word).
    async fn plain_server(answer: &'static [u8]) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let got = read_head(&mut s).await;
                let _ = tx.send((got, None));
                let _ = s.write_all(answer).await;
                let _ = s.shutdown().await;
            }
        });
        (addr, rx)
    }

    /// A TLS server with a fresh self-signed certificate.
    async fn tls_server(answer: &'static [u8]) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["www.example.com".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let key_der =
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key der");
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key_der)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(s).await else {
                    continue;
                };
                let sni = tls.get_ref().1.server_name().map(String::from);
                let got = read_head(&mut tls).await;
                let _ = tx.send((got, sni));
                let _ = tls.write_all(answer).await;
                let _ = tls.shutdown().await;
            }
        });
        (addr, rx)
    }

    #[test]
    fn request_bytes_as_the_oracle_builds_them() {
        let r = request("GET http://www.example.com:8080/a%20b/é?x=1#frag");
        assert_eq!(
            build_request(&r),
            "GET /a%20b/é?x=1 HTTP/1.1\r\nHost: www.example.com:8080\r\nConnection: close\r\n\r\n"
                .as_bytes()
        );
        let r = request("POST http://h.example?q | Host: other.example | X-A: 1");
        assert_eq!(
            build_request(&r),
            b"POST /?q HTTP/1.1\r\nHost: other.example\r\nX-A: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let r = request("PUT https://h.example | connection: keep-alive | Content-Length: 0");
        assert_eq!(
            build_request(&r),
            b"PUT / HTTP/1.1\r\nHost: h.example\r\nconnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn parse_response_like_the_oracle() {
        let mut r = Response::default();
        parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nSet-Cookie: a=1\r\n Set-Cookie :  b=2 \r\nbogus\r\nX-U: caf\xc3\xa9\xff\r\n\r\nabcdef",
            &mut r,
            false,
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.all("set-cookie"), vec!["a=1", "b=2"]);
        assert_eq!(r.first("x-u"), Some("café\\xff"));
        assert_eq!(r.body, b"abc");
        assert!(r.error.is_none());

        let mut r = Response::default();
        parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n3;x=y\r\nabc\r\n0x2\r\nde\r\n0\r\n\r\n",
            &mut r,
            false,
        );
        assert_eq!(r.body, b"abcde");

        let mut r = Response::default();
        parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            &mut r,
            true,
        );
        assert_eq!(r.body, b"");

        let mut r = Response::default();
        parse_response(b"HTTP/1.1 301 Moved\r\nLocation: /x", &mut r, false);
        assert_eq!(r.status, 301);
        assert_eq!(r.first("location"), Some("/x"));
        assert_eq!(r.error.as_deref(), Some("incomplete response"));

        let mut r = Response::default();
        parse_response(b"garbage\r\n\r\n", &mut r, false);
        assert_eq!(r.status, 0);
        assert_eq!(r.error.as_deref(), Some("bad status line b'garbage'"));

        // No Content-Length: everything after the head.
        let mut r = Response::default();
        parse_response(b"HTTP/1.0 404 Not Found\r\n\r\nrest\r\n", &mut r, false);
        assert_eq!((r.status, r.body.as_slice()), (404, &b"rest\r\n"[..]));
    }

    #[tokio::test]
    async fn plain_exchange_content_length_and_chunked() {
        let client = Client::new();
        let (addr, mut seen) = plain_server(
            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nVary: a\r\nVary: b\r\n\r\n/a.txt\n",
        )
        .await;
        let r = request("GET http://www.example.com/x?y | Accept: text/html");
        let resp = client.send(&r, addr.port(), 1).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"/a.txt");
        assert_eq!(resp.all("vary"), vec!["a", "b"]);
        assert!(resp.client_port.is_some());
        let (got, _) = seen.recv().await.expect("request seen");
        assert_eq!(
            got,
            b"GET /x?y HTTP/1.1\r\nHost: www.example.com\r\nAccept: text/html\r\nConnection: close\r\n\r\n"
        );

        let (addr, _seen) = plain_server(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n/a.t\r\n3\r\nxt\n\r\n0\r\n\r\n",
        )
        .await;
        let resp = client.send(&request("GET http://h/"), addr.port(), 1).await;
        assert_eq!(resp.body, b"/a.txt\n");
    }

    #[tokio::test]
    async fn no_answer_gives_status_0() {
        let client = Client::new();
        let (addr, _seen) = plain_server(b"").await;
        let resp = client.send(&request("GET http://h/"), addr.port(), 1).await;
        assert_eq!(resp.status, 0);
        assert_eq!(
            resp.error.as_deref(),
            Some("connection closed without an answer")
        );
        // Nothing listening at all.
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let resp = client.send(&request("GET http://h/"), port, 1).await;
        assert_eq!(resp.status, 0);
        assert!(resp.error.is_some());
    }

    #[tokio::test]
    async fn tls_exchange_sends_sni_and_reads_to_the_end() {
        let client = Client::new();
        let (addr, mut seen) = tls_server(
            b"HTTP/1.1 302 Found\r\nLocation: https://www.example.com/\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        )
        .await;
        let r = request("GET https://WWW.Example.com:8443/p#f");
        let resp = client.send(&r, 1, addr.port()).await;
        assert_eq!(resp.error, None);
        assert_eq!(resp.status, 302);
        assert_eq!(resp.first("location"), Some("https://www.example.com/"));
        assert_eq!(resp.body, b"ok");
        let (got, sni) = seen.recv().await.expect("request seen");
        assert_eq!(
            got,
            b"GET /p HTTP/1.1\r\nHost: WWW.Example.com:8443\r\nConnection: close\r\n\r\n"
        );
        // rustls hands the server the name in lower case; the client sent
        // it as written, like Python.
        assert_eq!(sni.as_deref(), Some("www.example.com"));

        // An IP-address host: no SNI, as in the oracle.
        let resp = client
            .send(&request("HEAD https://127.0.0.1/"), 1, addr.port())
            .await;
        assert_eq!(resp.status, 302);
        assert_eq!(resp.body, b"");
        let (_, sni) = seen.recv().await.expect("request seen");
        assert_eq!(sni, None);
    }
}
