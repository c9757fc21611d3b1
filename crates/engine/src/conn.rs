//! The connection a request came in on, as the rules see it
//! (`%{REMOTE_ADDR}`, `%{HTTPS}`, `%{SERVER_PORT}`).

use std::net::SocketAddr;

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
