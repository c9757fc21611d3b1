//! Test double of the parts of an ACME CA that the installed pebble
//! (Debian's 2.4.0) lacks: renewal information (RFC 9773) and profiles.
//!
//! An HTTPS server on loopback in front of pebble. It serves pebble's
//! real directory with a `renewalInfo` URL (and, when asked, a
//! `meta.profiles` map) added, and answers renewal-information requests
//! with the window the test sets. Every other request is passed to pebble
//! as it came, with the double's `Host` (pebble builds its URLs, and
//! checks the signed JWS `url` and account `kid`, from the Host it is
//! sent, so the client keeps talking to the double and pebble accepts
//! its signatures), and pebble's answer is passed back as it is. The one
//! exception is the new-order request: its JWS payload is recorded (the
//! `replaces` and `profile` the tests check), a `replaces` can be refused
//! (`alreadyReplaced`) when the test says so, and pebble's order is given
//! the `replaces` it was sent (pebble 2.4.0 ignores the field; RFC 9773
//! §5 has the CA echo it, and instant-acme checks the echo). Accounts,
//! nonces, authorizations, challenges, finalization and certificates are
//! all real pebble's.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::pebble::Pebble;

/// What the double answers; the test changes it while it runs.
#[derive(Debug, Default, Clone)]
pub(crate) struct Control {
    /// The suggested window served for a certificate not in `windows`,
    /// Unix seconds; `None` answers 404.
    pub window: Option<(i64, i64)>,
    /// Windows for particular certificates, by RFC 9773 identifier.
    pub windows: std::collections::HashMap<String, (i64, i64)>,
    /// The Retry-After of renewal-information answers, seconds.
    pub retry_after: u64,
    /// Refuse a new order naming the certificate it replaces
    /// (`alreadyReplaced`), as a CA does when another order did already.
    pub refuse_replaces: bool,
}

/// What the double saw.
#[derive(Debug, Default, Clone)]
pub(crate) struct Seen {
    /// The certificate identifiers renewal information was asked for.
    pub renewal_info: Vec<String>,
    /// The JWS payloads of new orders, in order (including refused ones).
    pub new_orders: Vec<serde_json::Value>,
}

/// What the directory lists beyond pebble's own.
pub(crate) struct Offer<'a> {
    pub renewal_info: bool,
    pub profiles: &'a [(&'a str, &'a str)],
}

pub(crate) struct DirectoryDouble {
    addr: SocketAddr,
    control: Arc<Mutex<Control>>,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DirectoryDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl DirectoryDouble {
    /// Starts the double in front of `pebble`, with a certificate under
    /// pebble's test root (the one root the ACME client trusts).
    pub(crate) async fn start(
        pebble: &Pebble,
        offer: Offer<'_>,
    ) -> Result<DirectoryDouble, String> {
        let (chain_pem, key_pem) = pebble.loopback_certificate()?;
        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the double's chain: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| format!("the double's key: {e}"))?;
        let client = Arc::new(Client::new(pebble)?);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let me = format!("https://{addr}");

        let host = me.trim_start_matches("https://").to_string();
        let (status, _, body) = client.request("GET", "/dir", &host, Bytes::new()).await?;
        if status != StatusCode::OK {
            return Err(format!("pebble's directory answered {status}"));
        }
        let mut directory: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("pebble's directory: {e}"))?;
        let new_order_path = directory["newOrder"]
            .as_str()
            .and_then(|u| u.strip_prefix(&me))
            .ok_or("pebble's directory has no newOrder on the double's address")?
            .to_string();
        if offer.renewal_info {
            directory["renewalInfo"] = format!("{me}/renewal-info").into();
        }
        if !offer.profiles.is_empty() {
            let profiles: serde_json::Map<String, serde_json::Value> = offer
                .profiles
                .iter()
                .map(|(n, d)| (n.to_string(), (*d).into()))
                .collect();
            directory["meta"]["profiles"] = profiles.into();
        }

        let control = Arc::new(Mutex::new(Control {
            retry_after: 3600,
            ..Control::default()
        }));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = Arc::new(Shared {
            directory: directory.to_string(),
            new_order_path,
            me,
            host,
            client,
            control: control.clone(),
            seen: seen.clone(),
        });
        let tls = tls_acceptor(chain, key)?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (tls, shared) = (tls.clone(), shared.clone());
                tokio::spawn(async move {
                    let Ok(stream) = tls.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(shared.answer(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(DirectoryDouble {
            addr,
            control,
            seen,
            task,
        })
    }

    pub(crate) fn directory_url(&self) -> String {
        format!("https://{}/dir", self.addr)
    }

    pub(crate) fn set(&self, change: impl FnOnce(&mut Control)) {
        change(&mut lock(&self.control));
    }

    pub(crate) fn seen(&self) -> Seen {
        lock(&self.seen).clone()
    }
}

struct Shared {
    directory: String,
    new_order_path: String,
    me: String,
    /// The double's `host:port`, sent to pebble as `Host`.
    host: String,
    client: Arc<Client>,
    control: Arc<Mutex<Control>>,
    seen: Arc<Mutex<Seen>>,
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Answer {
    let mut rsp = Response::new(Full::new(body.into()));
    *rsp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        rsp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    rsp
}

impl Shared {
    async fn answer(&self, req: Request<hyper::body::Incoming>) -> Answer {
        let path = req.uri().path().to_string();
        if req.method() == hyper::Method::GET && path == "/dir" {
            return answer(StatusCode::OK, "application/json", self.directory.clone());
        }
        if let Some(id) = path.strip_prefix("/renewal-info/") {
            lock(&self.seen).renewal_info.push(id.to_string());
            let control = lock(&self.control).clone();
            let Some((start, end)) = control.windows.get(id).copied().or(control.window) else {
                return answer(StatusCode::NOT_FOUND, "text/plain", "no window");
            };
            let body = serde_json::json!({
                "suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)},
                "explanationURL": format!("{}/why", self.me),
            });
            let mut rsp = answer(StatusCode::OK, "application/json", body.to_string());
            if let Ok(v) = control.retry_after.to_string().parse() {
                rsp.headers_mut().insert(hyper::header::RETRY_AFTER, v);
            }
            return rsp;
        }
        let method = req.method().to_string();
        let path_and_query = req
            .uri()
            .path_and_query()
            .map_or_else(|| path.clone(), ToString::to_string);
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return answer(StatusCode::BAD_REQUEST, "text/plain", e.to_string()),
        };
        if method == "POST" && path == self.new_order_path {
            return self.new_order(body).await;
        }
        match self
            .client
            .request(&method, &path_and_query, &self.host, body)
            .await
        {
            Ok((status, headers, body)) => passed_back(status, &headers, body),
            Err(e) => answer(StatusCode::BAD_GATEWAY, "text/plain", e),
        }
    }

    async fn new_order(&self, body: Bytes) -> Answer {
        let payload = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|jws| base64url(jws["payload"].as_str()?))
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(&p).ok())
            .unwrap_or(serde_json::Value::Null);
        lock(&self.seen).new_orders.push(payload.clone());
        let replaces = payload.get("replaces").cloned();
        if replaces.is_some() && lock(&self.control).refuse_replaces {
            let problem = serde_json::json!({
                "type": "urn:ietf:params:acme:error:alreadyReplaced",
                "detail": "the certificate was already replaced (directory double)",
                "status": 409,
            });
            return answer(
                StatusCode::CONFLICT,
                "application/problem+json",
                problem.to_string(),
            );
        }
        let (status, headers, body) = match self
            .client
            .request("POST", &self.new_order_path, &self.host, body)
            .await
        {
            Ok(r) => r,
            Err(e) => return answer(StatusCode::BAD_GATEWAY, "text/plain", e),
        };
        let body = match (replaces, serde_json::from_slice::<serde_json::Value>(&body)) {
            (Some(r), Ok(mut order)) if status.is_success() => {
                order["replaces"] = r;
                Bytes::from(order.to_string())
            }
            _ => body,
        };
        passed_back(status, &headers, body)
    }
}

/// Pebble's answer as the client gets it (the length is the new body's).
fn passed_back(status: StatusCode, headers: &hyper::HeaderMap, body: Bytes) -> Answer {
    let mut rsp = Response::new(Full::new(body));
    *rsp.status_mut() = status;
    for (name, value) in headers {
        if name != hyper::header::CONTENT_LENGTH
            && name != hyper::header::TRANSFER_ENCODING
            && name != hyper::header::CONNECTION
        {
            rsp.headers_mut().append(name.clone(), value.clone());
        }
    }
    rsp
}

/// HTTPS requests to pebble, trusting its root.
struct Client {
    port: u16,
    tls: tokio_rustls::TlsConnector,
}

impl Client {
    fn new(pebble: &Pebble) -> Result<Client, String> {
        let url = pebble.directory_url();
        let base = url.trim_end_matches("/dir").to_string();
        let port = base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or("pebble's URL has no port")?;
        let mut roots = rustls::RootCertStore::empty();
        let root = CertificateDer::from_pem_file(pebble.ca_root_pem_path())
            .map_err(|e| format!("pebble's root: {e}"))?;
        roots.add(root).map_err(|e| e.to_string())?;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Client {
            port,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        host: &str,
        body: Bytes,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), String> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| format!("connect to pebble: {e}"))?;
        let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS to pebble: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, host);
        if method == "POST" {
            req = req.header(hyper::header::CONTENT_TYPE, "application/jose+json");
        }
        let req = req
            .header(hyper::header::USER_AGENT, "htgate-test-directory-double")
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let rsp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let (parts, body) = rsp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((parts.status, parts.headers, body))
    }
}

fn tls_acceptor(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| e.to_string())?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Unpadded base64url (JWS payloads), `None` on a bad character.
fn base64url(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            b'=' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
