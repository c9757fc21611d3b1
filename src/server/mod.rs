//! The HTTP side: listeners (plain and TLS, HTTP/1.1 and HTTP/2 via ALPN),
//! the hyper service that hands each request to a [`Handler`], static file
//! responses, Apache-like status pages and the content-type table.
//!
//! Request semantics (.htaccess, rewriting, access control) live in
//! `crate::engine`; this module knows nothing about them.

pub mod autoindex;
pub mod compress;
pub mod limits;
pub mod listener;
pub mod mime;
pub mod quick;
pub mod refusal;
pub mod sending;
pub mod static_files;
pub mod status_page;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

/// The response body type used everywhere.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// What the server knows about the connection a request came in on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// True on the TLS listener.
    pub tls: bool,
    /// The SNI name the client sent, if any (TLS only).
    pub sni: Option<String>,
    /// The peer is a configured front proxy: its `HTTPS`,
    /// `X-Forwarded-Proto` and `Forwarded` headers are believed, and
    /// `remote` is the client it names (`hosting::proxy`).
    pub trusted_proxy: bool,
    /// A trusted proxy said the client used HTTPS: the request is an HTTPS
    /// one for the rules (`%{HTTPS}`, `%{REQUEST_SCHEME}`, the port).
    pub proxied_https: bool,
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = http::Response<Body>> + Send>>;

/// Turns one request into one response.  Implemented by the engine.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        req: http::Request<hyper::body::Incoming>,
        conn: Arc<ConnInfo>,
    ) -> HandlerFuture;
}

/// A body from bytes.
pub fn full_body(data: impl Into<Bytes>) -> Body {
    use http_body_util::BodyExt;
    http_body_util::Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty_body() -> Body {
    full_body(Bytes::new())
}
