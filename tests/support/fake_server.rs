//! A tiny static file server standing in for htgate in the runner's own
//! end-to-end test: it takes the same `QuickOptions` (loading the case's PEM
//! certificate and key from disk, as htgate must), serves the site with the
//! debug headers, and has one redirect with a cookie so that Location and
//! Set-Cookie normalisation are exercised over real sockets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context};
use htgate_hosting::quick::QuickOptions;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use async_trait::async_trait;
use htgate_conformance::{quick_options, Running, Starter, Workdir};

pub(super) struct FakeServer {
    http: SocketAddr,
    https: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

#[async_trait]
impl Running for FakeServer {
    fn ports(&self) -> (u16, u16) {
        (self.http.port(), self.https.port())
    }

    async fn stop(self: Box<Self>) -> Result<(), String> {
        for t in self.tasks {
            t.abort();
        }
        Ok(())
    }
}

/// Starts the fake server on a case's work directory; `fail` makes it
/// refuse to start (the runner's error path).
pub(super) struct FakeStarter {
    pub(super) fail: bool,
}

#[async_trait]
impl Starter for FakeStarter {
    async fn start(&self, wd: &Workdir) -> Result<Box<dyn Running>, String> {
        if self.fail {
            return Err("the server failed to start: no luck".into());
        }
        start(quick_options(wd))
            .await
            .map(|s| Box::new(s) as Box<dyn Running>)
            .map_err(|e| format!("the server failed to start: {e:#}"))
    }
}

/// `%XX` decoding of a path.
fn unquote_to_bytes(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Binds both listeners (the TLS one with the PEM files of `opts`) and
/// serves `opts.root` until stopped.
async fn start(opts: QuickOptions) -> anyhow::Result<FakeServer> {
    let cert = opts.cert.clone().context("no certificate")?;
    let key = opts.key.clone().context("no key")?;
    let certs = CertificateDer::pem_file_iter(&cert)
        .map_err(|e| anyhow!("{}: {e:?}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{}: {e:?}", cert.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(&key).map_err(|e| anyhow!("{}: {e:?}", key.display()))?;
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let plain = TcpListener::bind(opts.http).await?;
    let tls = TcpListener::bind(opts.https).await?;
    let (http, https) = (plain.local_addr()?, tls.local_addr()?);
    let root = Arc::new(opts.root.clone());
    let mut tasks = Vec::new();
    let r = root.clone();
    tasks.push(tokio::spawn(async move {
        while let Ok((s, _)) = plain.accept().await {
            let r = r.clone();
            tokio::spawn(async move { serve(s, &r, http.port(), false).await });
        }
    }));
    tasks.push(tokio::spawn(async move {
        while let Ok((s, _)) = tls.accept().await {
            let (r, acceptor) = (root.clone(), acceptor.clone());
            tokio::spawn(async move {
                if let Ok(s) = acceptor.accept(s).await {
                    serve(s, &r, http.port(), true).await;
                }
            });
        }
    }));
    Ok(FakeServer { http, https, tasks })
}

/// `%`-escapes what Apache's `escape` would (anything but unreserved
/// characters and `/`).
fn escape(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if c.is_ascii_alphanumeric() || b"/-._~=&".contains(&c) {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect()
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    root: &Path,
    http_port: u16,
    tls: bool,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or("/"));
    let host = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.trim().split(':').next().unwrap_or("").to_string())
        .unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let now = SystemTime::now();
    let date = httpdate::fmt_http_date(now);
    let answer: Vec<u8> = if path == "/go" {
        let later = httpdate::fmt_http_date(now + Duration::from_secs(3600));
        format!(
            "HTTP/1.1 302 Found\r\nDate: {date}\r\nLocation: http://{host}:{http_port}/t.html\r\n\
             Set-Cookie: k=v; expires={later}; path=/\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    } else {
        let decoded = unquote_to_bytes(path);
        let mut rel = String::from_utf8_lossy(&decoded).into_owned();
        if rel.ends_with('/') {
            rel.push_str("index.html");
        }
        let file: PathBuf = root.join(rel.trim_start_matches('/'));
        match std::fs::read(&file) {
            Ok(body) => {
                let ctype = if rel.ends_with(".html") {
                    "Content-Type: text/html\r\n"
                } else {
                    ""
                };
                let mut a = format!(
                    "HTTP/1.1 200 OK\r\nDate: {date}\r\n{ctype}X-Debug-Final-Uri: {}\r\n\
                     X-Debug-Final-Query: {}\r\n",
                    escape(rel.as_bytes()),
                    escape(query.as_bytes())
                )
                .into_bytes();
                // Chunked over TLS, Content-Length in the clear, so the
                // runner reads both framings.
                let body = if method == "HEAD" { Vec::new() } else { body };
                if tls {
                    a.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                    if !body.is_empty() {
                        a.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
                        a.extend_from_slice(&body);
                        a.extend_from_slice(b"\r\n");
                    }
                    a.extend_from_slice(b"0\r\n\r\n");
                } else {
                    a.extend_from_slice(
                        format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                    );
                    a.extend_from_slice(&body);
                }
                a
            }
            Err(_) => format!(
                "HTTP/1.1 404 Not Found\r\nDate: {date}\r\nContent-Type: text/html\r\n\
                 Content-Length: 9\r\n\r\nnot found"
            )
            .into_bytes(),
        }
    };
    let _ = s.write_all(&answer).await;
    let _ = s.shutdown().await;
}
