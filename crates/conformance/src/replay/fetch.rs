//! Sending one replayed request to one server: HTTP/1.1 over TCP or TLS
//! (SNI from the logged host, any certificate accepted: the tool compares
//! two servers, it does not vouch for either), `Connection: close`, the
//! answer read to its end within a time and size bound.

use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{parse_response, Client, Response};

/// Time for one whole exchange.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The most of an answer read; the rest is not compared (and the answer
/// is marked as cut).
pub(super) const MAX_ANSWER_BYTES: usize = 16 << 20;

/// A server to replay against: where its plain and TLS listeners are.
#[derive(Debug, Clone)]
pub struct Target {
    /// `apache` or `htgate`: how reports name it.
    pub name: String,
    /// `host:port` of the plain listener.
    pub http: Option<String>,
    /// `host:port` of the TLS listener.
    pub https: Option<String>,
}

/// `http://host:port` or `https://host:port` → `(tls, "host:port")`, with
/// the scheme's port when none is given.
pub fn parse_origin(url: &str) -> Result<(bool, String), String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        return Err(format!("{url}: give http://HOST:PORT or https://HOST:PORT"));
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        return Err(format!(
            "{url}: give only a scheme, host and port (no path)"
        ));
    }
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.ends_with(':') && p.parse::<u16>().is_ok());
    let authority = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{}", if tls { 443 } else { 80 })
    };
    Ok((tls, authority))
}

impl Target {
    /// The `host:port` a request goes to.
    pub fn address(&self, tls: bool) -> Option<&str> {
        if tls {
            self.https.as_deref()
        } else {
            self.http.as_deref()
        }
    }

    /// Its listeners, for reports: `host:port host:port`.
    pub fn addresses(&self) -> String {
        [&self.http, &self.https]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The ports of this target (for normalising self-references).
    pub fn ports(&self) -> Vec<u16> {
        [&self.http, &self.https]
            .into_iter()
            .flatten()
            .filter_map(|a| a.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
            .collect()
    }
}

/// The request's bytes: request line as logged, Host, the replayed
/// headers, `Connection: close`.
pub(super) fn request_bytes(
    method: &str,
    target: &str,
    host: &str,
    headers: &[(String, String)],
) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (n, v) in headers {
        if n.eq_ignore_ascii_case("host") || n.eq_ignore_ascii_case("connection") {
            continue;
        }
        // A header value from a log cannot carry a line break here.
        let v: String = v.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// Sends one request to `address`; the answer, or why there was none.
pub(super) async fn fetch(
    client: &Client,
    address: &str,
    tls: bool,
    sni: &str,
    data: &[u8],
    head: bool,
) -> Response {
    let mut resp = Response::default();
    let mut raw = Vec::new();
    let exchange = async {
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        if !tls {
            return send_and_read(tcp, data, &mut raw).await;
        }
        let name = ServerName::try_from(sni.to_string())
            .or_else(|_| ServerName::try_from("localhost"))
            .map_err(|e| format!("bad TLS name {sni:?}: {e}"))?;
        let stream = client
            .with_sni
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {address} failed: {e}"))?;
        send_and_read(stream, data, &mut raw).await
    };
    let result = match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no complete answer within {} s",
            REQUEST_TIMEOUT.as_secs()
        )),
    };
    if let Err(e) = result {
        if raw.is_empty() {
            resp.error = Some(e);
            return resp;
        }
    }
    if raw.is_empty() {
        resp.error = Some("connection closed without an answer".into());
        return resp;
    }
    parse_response(&raw, &mut resp, head);
    resp
}

async fn send_and_read<S>(mut s: S, data: &[u8], raw: &mut Vec<u8>) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    s.write_all(data).await.map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65536];
    loop {
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(());
        }
        let room = MAX_ANSWER_BYTES.saturating_sub(raw.len());
        raw.extend_from_slice(&buf[..n.min(room)]);
        if room <= n {
            return Err(format!("answer longer than {MAX_ANSWER_BYTES} bytes: cut"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            parse_origin("http://127.0.0.1:8080").unwrap(),
            (false, "127.0.0.1:8080".into())
        );
        assert_eq!(
            parse_origin("https://example.com/").unwrap(),
            (true, "example.com:443".into())
        );
        assert_eq!(
            parse_origin("http://[::1]").unwrap(),
            (false, "[::1]:80".into())
        );
        assert!(parse_origin("ftp://x").is_err());
        assert!(parse_origin("http://x/path").is_err());
    }

    #[test]
    fn request_has_no_smuggled_lines() {
        let b = request_bytes(
            "GET",
            "/a",
            "h.test",
            &[("User-Agent".into(), "x\r\nEvil: 1".into())],
        );
        let s = String::from_utf8(b).unwrap();
        assert_eq!(
            s,
            "GET /a HTTP/1.1\r\nHost: h.test\r\nUser-Agent: xEvil: 1\r\nConnection: close\r\n\r\n"
        );
    }
}
