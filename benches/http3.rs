//! Requests per second over loopback: HTTP/3 (QUIC) against HTTP/2 (TLS
//! over TCP), to the same in-process quick-mode server, on two answers
//! like the shared bench's: W1, a `.htaccess` 301 (a force-www rule, the
//! request being HTTPS already), and W2, a small static file.
//!
//! Each iteration is a batch of `BATCH` requests, `CONCURRENCY` at a time
//! on one connection; criterion's throughput is requests per second.
//! `cargo bench --bench http3`.  (`../shared/bench` has no HTTP/3 load
//! generator: Debian's h2load and curl are built without HTTP/3.)

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::stream::{FuturesUnordered, StreamExt};
use htgate_server::h3_client::Session;
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::Arc;

const BATCH: u64 = 200;
const CONCURRENCY: usize = 16;

/// Accepts any certificate (the bench's own self-signed one).
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client_tls(alpn: &[u8]) -> rustls::ClientConfig {
    let provider = Arc::new(htgate_server::tls::provider());
    let mut c = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    c.alpn_protocols = vec![alpn.to_vec()];
    c
}

type H2 = hyper::client::conn::http2::SendRequest<http_body_util::Empty<Bytes>>;

async fn h2_connect(addr: SocketAddr) -> H2 {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client_tls(b"h2")))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").expect("name"),
            tcp,
        )
        .await
        .expect("tls");
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("h2");
    tokio::spawn(conn);
    send
}

fn uri(path: &str) -> String {
    format!("https://localhost{path}")
}

async fn h2_batch(send: &H2, path: &str) {
    let mut running = FuturesUnordered::new();
    let mut sent = 0;
    while sent < BATCH || !running.is_empty() {
        while sent < BATCH && running.len() < CONCURRENCY {
            let mut s = send.clone();
            let req = http::Request::get(uri(path))
                .body(http_body_util::Empty::<Bytes>::new())
                .expect("req");
            running.push(async move {
                let resp = s.send_request(req).await.expect("answer");
                let _ = resp.into_body().collect().await;
            });
            sent += 1;
        }
        running.next().await;
    }
}

async fn h3_batch(session: &Session, path: &str) {
    let mut running = FuturesUnordered::new();
    let mut sent = 0;
    while sent < BATCH || !running.is_empty() {
        while sent < BATCH && running.len() < CONCURRENCY {
            let mut h = session.handle();
            let req = http::Request::get(uri(path)).body(()).expect("req");
            running.push(async move {
                h.request(req, None).await.expect("answer");
            });
            sent += 1;
        }
        running.next().await;
    }
}

fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(".htaccess"),
        "RewriteEngine On\nRewriteCond %{HTTP_HOST} !^www\\. [NC]\nRewriteRule ^ https://www.%{HTTP_HOST}%{REQUEST_URI} [L,R=301]\n",
    )
    .expect("htaccess");
    std::fs::create_dir_all(dir.path().join("static")).expect("dir");
    std::fs::write(dir.path().join("static/.htaccess"), "RewriteEngine Off\n").expect("htaccess");
    std::fs::write(dir.path().join("static/page.html"), "x".repeat(1024)).expect("page");
    dir
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = site();
    let opts = htgate_hosting::quick::QuickOptions {
        http3: true,
        ..htgate_hosting::quick::QuickOptions::new(dir.path().to_path_buf())
    };
    let server = rt
        .block_on(htgate_hosting::quick::start(opts))
        .expect("start");
    let addr = server.https_addr;
    let h2 = rt.block_on(h2_connect(addr));
    let h3 = rt
        .block_on(Session::connect(addr, "localhost", client_tls(b"h3")))
        .expect("h3");
    let mut g = c.benchmark_group("loopback");
    g.throughput(Throughput::Elements(BATCH));
    for (name, path) in [("W1-301", "/"), ("W2-static", "/static/page.html")] {
        g.bench_function(format!("h2/{name}"), |b| {
            b.iter(|| rt.block_on(h2_batch(&h2, path)))
        });
        g.bench_function(format!("h3/{name}"), |b| {
            b.iter(|| rt.block_on(h3_batch(&h3, path)))
        });
    }
    g.finish();
    h3.close();
    rt.block_on(server.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
