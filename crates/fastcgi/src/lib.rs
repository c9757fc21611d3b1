//! A small, careful FastCGI 1.0 client for PHP-FPM.
//!
//! One [`Pool`] per upstream keeps idle keep-alive connections. A request
//! ([`Pool::send`], or [`Pool::read_body`] then [`Pool::send_prepared`] to
//! wait for something in between) takes the client's body in as the
//! pool's [`BodyPolicy`] says (all of it first, or as it comes), writes
//! BEGIN_REQUEST + PARAMS, sends the body as STDIN (concurrently with
//! reading the answer, so a script that writes before it reads cannot
//! deadlock us), reads STDOUT up to the end of the CGI response head, and hands back a [`Response`] whose body streams the
//! rest of STDOUT with back-pressure. A connection goes back to the pool
//! only after a clean END_REQUEST with nothing unread.
//!
//! Why not the `fastcgi-client` crate: its keep-alive response stream
//! borrows the connection (no pooling with a body handed to hyper), it
//! buffers without bound and it unwraps protocol data.
//!
//! Layout: `record` encodes and decodes records, `cgi` parses the CGI
//! response head, `body` turns the client's body into STDIN, `conn` opens
//! sockets, `exchange` runs one request on one connection, `stderr` logs
//! PHP's error output, `pool` keeps connections and retries a stale one,
//! `harness` runs a real PHP-FPM for tests.

mod body;
mod cgi;
mod conn;
mod exchange;
#[doc(hidden)]
// Test scaffolding (a PHP-FPM started for a test): never in the binary.
#[cfg(any(test, feature = "test-support"))]
pub mod harness;
mod pool;
mod record;
mod stderr;

#[cfg(test)]
mod fake_tests;
#[cfg(test)]
mod fpm_tests;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use pool::Pool;

/// Where PHP-FPM (or any FastCGI responder) listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Upstream {
    /// A Unix socket path, e.g. `/run/php/php8.2-fpm.sock`.
    Unix(PathBuf),
    /// `host:port`, IPv6 hosts in brackets (`[::1]:9000`).
    Tcp(String),
}

impl Upstream {
    /// Accepts `/path.sock`, `unix:/path.sock` (also Apache's
    /// `unix:/path.sock|fcgi://localhost/`), `host:port`, `tcp://host:port`
    /// and `fcgi://host:port` (Apache's spelling).
    pub fn parse(s: &str) -> Result<Upstream, String> {
        let text = s.trim();
        if text.is_empty() {
            return Err("empty FastCGI address: expected a socket path or host:port".into());
        }
        if let Some(rest) = text.strip_prefix("unix:") {
            // Apache's ProxyPass form carries the protocol after a '|'.
            let path = rest.split('|').next().unwrap_or(rest);
            if !path.starts_with('/') {
                return Err(format!(
                    "FastCGI address {s:?}: the socket path after unix: must be absolute"
                ));
            }
            return Ok(Upstream::Unix(PathBuf::from(path)));
        }
        if text.starts_with('/') {
            return Ok(Upstream::Unix(PathBuf::from(text)));
        }
        let hostport = ["tcp://", "fcgi://"]
            .iter()
            .find_map(|scheme| text.strip_prefix(scheme))
            .map(|rest| rest.trim_end_matches('/'))
            .unwrap_or(text);
        parse_host_port(hostport)
            .map(|()| Upstream::Tcp(hostport.to_string()))
            .map_err(|why| format!("FastCGI address {s:?}: {why}"))
    }
}

/// `host:port` with a non-zero port; IPv6 literals must be bracketed so the
/// port is unambiguous.
fn parse_host_port(text: &str) -> Result<(), String> {
    let expected = "expected an absolute socket path, unix:/path, or host:port";
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (addr, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("unclosed '[' ({expected})"))?;
        addr.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("{addr:?} is not an IPv6 address"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| format!("missing :port after ]  ({expected})"))?;
        (addr, port)
    } else {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("no port ({expected})"))?;
        if host.contains(':') {
            return Err("an IPv6 address needs brackets: [::1]:9000".into());
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(format!("empty host ({expected})"));
    }
    if host.contains(['/', ' ', '\t', '@']) {
        return Err(format!("{host:?} is not a host name ({expected})"));
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(()),
        _ => Err(format!("{port:?} is not a port number (1-65535)")),
    }
}

impl fmt::Display for Upstream {
    /// The form [`Upstream::parse`] reads back: `unix:/path` or `host:port`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Unix(path) => write!(f, "unix:{}", path.display()),
            Upstream::Tcp(hostport) => f.write_str(hostport),
        }
    }
}

/// Bounds on one pool's work.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connecting (a failure or timeout is a 503, as Apache's mod_proxy).
    pub connect_timeout: Duration,
    /// Longest wait for the first response byte and between reads of the
    /// response (and of the client's body while we forward it): Debian's
    /// Apache `Timeout 300`.
    pub response_timeout: Duration,
    /// Idle keep-alive connections kept per pool; 0 disables keep-alive.
    pub max_idle: usize,
    /// Largest CGI response head (status and header lines).
    pub max_header_bytes: usize,
    /// Largest request body passed on; 0 means no limit.
    pub max_body_bytes: u64,
    /// How the client's body is read before and while it goes to STDIN.
    pub body: BodyPolicy,
}

/// How the client's request body is taken in (see the `body` module).
#[derive(Debug, Clone)]
pub struct BodyPolicy {
    /// Read the whole body before a connection to the server is taken, so
    /// that a slow client never holds a PHP-FPM worker (nginx's
    /// `fastcgi_request_buffering on`). Off: the body is streamed as it
    /// arrives (a body of unknown length is still read first, CGI needs
    /// its length).
    pub buffer: bool,
    /// A body read first stays in memory up to this size; past it, it goes
    /// to an unnamed temp file.
    pub memory_bytes: usize,
    /// The least the client must keep up, buffered or streamed; `None`:
    /// only `response_timeout` between two reads.
    pub min_rate: Option<MinRate>,
}

impl Default for BodyPolicy {
    fn default() -> BodyPolicy {
        BodyPolicy {
            buffer: false,
            memory_bytes: body::SPOOL_IN_MEMORY,
            min_rate: None,
        }
    }
}

/// mod_reqtimeout's `RequestReadTimeout body=20,MinRate=500`: the body's
/// first bytes must come within `initial`; each `bytes_per_second` bytes
/// received push the deadline one second further, never more than
/// `initial` ahead of now (so a fast start cannot buy a long stall). A
/// client that misses the deadline gets 408.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    pub initial: Duration,
    /// 0: no rate, `initial` is then the longest wait between two reads.
    pub bytes_per_second: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(300),
            max_idle: 16,
            max_header_bytes: 64 * 1024,
            max_body_bytes: 0,
            body: BodyPolicy::default(),
        }
    }
}

/// The CGI answer: status and headers parsed, body still streaming.
pub struct Response {
    pub status: u16,
    /// The reason phrase of a `Status:` line, if it had one.
    pub reason: Option<String>,
    /// The CGI headers minus `Status`, in order, repeated names kept
    /// (Set-Cookie). Bytes that are not UTF-8 are replaced (U+FFFD).
    pub headers: Vec<(String, String)>,
    /// The rest of STDOUT, streamed; a connection lost before
    /// END_REQUEST ends it with an error (the client sees an aborted
    /// response, as with Apache).
    pub body: htgate_content::Body,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// Why a request could not be answered. [`Error::status`] gives the HTTP
/// status to answer the client with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Refused, missing socket, connect timeout: (upstream, cause).
    #[error("cannot connect to FastCGI server {0}: {1}")]
    Connect(String, #[source] io::Error),
    /// No answer within `response_timeout`: (upstream, the timeout).
    #[error("FastCGI server {0} sent nothing for {1:?}")]
    Timeout(String, Duration),
    /// The server broke the protocol (the text names the upstream).
    #[error("{0}")]
    Protocol(String),
    /// The connection failed: (upstream, cause).
    #[error("I/O error with FastCGI server {0}: {1}")]
    Io(String, #[source] io::Error),
    #[error("the CGI response head from the FastCGI server exceeds the size limit")]
    HeaderTooLarge,
    #[error("the request body exceeds the size limit")]
    BodyTooLarge,
    /// The client's body failed (aborted, timed out, longer or shorter
    /// than its Content-Length).
    #[error("bad request body: {0}")]
    ClientBody(String),
    /// The client sent its body slower than the minimum rate.
    #[error("request body too slow: {0}")]
    SlowBody(String),
    /// END_REQUEST with protocolStatus FCGI_OVERLOADED.
    #[error("the FastCGI server is overloaded")]
    Overloaded,
}

impl Error {
    /// The HTTP status for the client: 503 when the server is not there or
    /// overloaded, 504 on timeout, 502 when it misbehaved, 413 for a body
    /// over the limit, 400 when the client's body failed, 408 when it came
    /// slower than the minimum rate.
    pub fn status(&self) -> u16 {
        match self {
            Error::Connect(..) | Error::Overloaded => 503,
            Error::Timeout(..) => 504,
            Error::Protocol(_) | Error::Io(..) | Error::HeaderTooLarge => 502,
            Error::BodyTooLarge => 413,
            Error::ClientBody(_) => 400,
            Error::SlowBody(_) => 408,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstreams() {
        let unix = |p: &str| Ok(Upstream::Unix(PathBuf::from(p)));
        let tcp = |p: &str| Ok(Upstream::Tcp(p.to_string()));
        assert_eq!(Upstream::parse("/run/php/x.sock"), unix("/run/php/x.sock"));
        assert_eq!(
            Upstream::parse("unix:/run/php/x.sock"),
            unix("/run/php/x.sock")
        );
        assert_eq!(
            Upstream::parse("unix:/run/php/x.sock|fcgi://localhost/"),
            unix("/run/php/x.sock")
        );
        assert_eq!(Upstream::parse("127.0.0.1:9000"), tcp("127.0.0.1:9000"));
        assert_eq!(Upstream::parse("tcp://host:9000"), tcp("host:9000"));
        assert_eq!(Upstream::parse("fcgi://host:9000/"), tcp("host:9000"));
        assert_eq!(Upstream::parse("[::1]:9000"), tcp("[::1]:9000"));
        assert_eq!(Upstream::parse("localhost:9000"), tcp("localhost:9000"));
        assert_eq!(Upstream::parse(" localhost:9000 "), tcp("localhost:9000"));
    }

    #[test]
    fn rejects_bad_upstreams_with_reasons() {
        for (bad, why) in [
            ("", "empty"),
            ("run/php.sock", "no port"),
            ("unix:run/php.sock", "absolute"),
            ("localhost", "no port"),
            ("localhost:", "not a port"),
            ("localhost:0", "not a port"),
            ("localhost:70000", "not a port"),
            (":9000", "empty host"),
            ("::1:9000", "brackets"),
            ("[::1:9000", "unclosed"),
            ("[::1]", "missing :port"),
            ("[nothex]:9000", "not an IPv6"),
        ] {
            let err = Upstream::parse(bad).expect_err(bad);
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["unix:/run/php/x.sock", "127.0.0.1:9000", "[::1]:9000"] {
            let upstream = Upstream::parse(text).expect(text);
            assert_eq!(upstream.to_string(), text);
            assert_eq!(Upstream::parse(&upstream.to_string()), Ok(upstream));
        }
    }

    #[test]
    fn maps_errors_to_statuses() {
        let io = || io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        let up = || "unix:/x".to_string();
        assert_eq!(Error::Connect(up(), io()).status(), 503);
        assert_eq!(Error::Overloaded.status(), 503);
        assert_eq!(Error::Timeout(up(), Duration::from_secs(1)).status(), 504);
        assert_eq!(Error::Protocol("x".into()).status(), 502);
        assert_eq!(Error::Io(up(), io()).status(), 502);
        assert_eq!(Error::HeaderTooLarge.status(), 502);
        assert_eq!(Error::BodyTooLarge.status(), 413);
        assert_eq!(Error::ClientBody("x".into()).status(), 400);
        assert_eq!(Error::SlowBody("x".into()).status(), 408);
        let text = Error::Connect(up(), io()).to_string();
        assert!(
            text.contains("unix:/x") && text.contains("refused"),
            "{text}"
        );
    }
}
