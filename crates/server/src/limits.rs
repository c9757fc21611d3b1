//! What one client may ask of the server: request sizes, timeouts and how
//! many connections it may hold.  Apache's names are given where a limit
//! has one; the values are Apache's defaults unless said otherwise.
//!
//! Where each limit bites:
//! - request line, header fields, `Content-Length`: [`check_request`], run
//!   by the listener before the handler sees the request, answered with
//!   Apache's status page (414, 431, 413) and `Connection: close`; the
//!   same function refuses (400) the HTTP/1 framing and `Host` errors
//!   hyper lets through;
//! - a request head larger than [`MAX_HEAD_BYTES`] or with more than
//!   [`PARSER_MAX_HEADERS`] fields: hyper's parser, which answers a bare 431
//!   (status line only) and closes;
//! - a chunked HTTP/1 body past [`MAX_BODY_BYTES`], a stalled HTTP/1 body,
//!   slow heads, idle connections: the listener's connection loop, which
//!   closes the connection without an answer (there is no safe point to
//!   answer in the middle of a body);
//! - connection counts: [`ConnLimiter`], taken around `accept`; it also
//!   keeps each client address's places for response bodies
//!   ([`MAX_SENDING_PER_CLIENT`], used by `sending.rs`);
//! - responses the client does not take: [`SEND_TIMEOUT`], checked by the
//!   listener's connection loop with `sending.rs`.
//!
//! The process's listeners use [`Limits::process`]: the defaults, with what
//! the operator set at start (drain, send timeout, places).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Longest request line, without its CRLF (Apache's `LimitRequestLine`).
/// Longer: 414.
pub(crate) const MAX_REQUEST_LINE: usize = 8190;
/// Longest header field, `Name: value` (Apache's `LimitRequestFieldSize`).
/// Longer: 431 (Apache says 400; RFC 6585's 431 is what the issue asks).
pub(crate) const MAX_FIELD_SIZE: usize = 8190;
/// Most header fields in one request (Apache's `LimitRequestFields`).
/// More: 431.
pub(crate) const MAX_FIELDS: usize = 100;
/// The whole request head as hyper may buffer it (HTTP/1 `max_buf_size`,
/// HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`).  Larger than any head the
/// three limits above let through in practice, so that those get a proper
/// page; past it hyper answers a bare 431.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Header fields hyper's parser makes room for: one above [`MAX_FIELDS`],
/// so that a request one over the limit gets our 431 page; past it hyper
/// answers a bare 431.  Not more: hyper fills a slot array of this size
/// for every request it parses (with 256 slots that was 7 % of a
/// redirect's instructions).
pub(crate) const PARSER_MAX_HEADERS: usize = MAX_FIELDS + 1;
pub use htgate_engine::limits::MAX_BODY_BYTES;
/// How long a client has to complete the TLS handshake.
pub(crate) const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send a complete HTTP/1 request head, counted
/// from the first byte it is awaited (so also how long an idle keep-alive
/// connection is kept), and how long any new connection has to deliver its
/// first request (this covers the HTTP/2 preface and the bytes the
/// protocol detection waits for).  mod_reqtimeout's `header=20-40`.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// An HTTP/1 request whose handler waits for body bytes that do not come
/// for this long is aborted (mod_reqtimeout's `body=20` with its MinRate
/// extension, rounded up to Apache's `Timeout` of 60 s).
pub(crate) const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// A connection with no request in progress and no bytes moving for this
/// long is closed (Apache's default `Timeout`).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long in-flight connections get to finish after shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections over every listener of the process.  Past it the
/// server stops accepting (clients wait in the kernel's listen backlog)
/// until one ends.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Open connections from one client address (IPv6: one /64, which is what
/// one customer line gets).  Past it a new connection is closed at once, so
/// that one client cannot take the whole of [`MAX_CONNECTIONS`].
pub(crate) const MAX_CONNECTIONS_PER_IP: usize = 256;
/// HTTP/2 streams open at once per connection (Apache's
/// `H2MaxSessionStreams`).
pub(crate) const H2_MAX_STREAMS: u32 = 100;
/// HTTP/2 streams the client reset before the server accepted them, per
/// connection; past it: GOAWAY `ENHANCE_YOUR_CALM` (CVE-2023-44487, rapid
/// reset).
pub(crate) const H2_MAX_PENDING_RESETS: usize = 20;
/// HTTP/2 streams the server had to reset because of the client's protocol
/// errors, per connection; past it: GOAWAY (CVE-2025-8671, "MadeYouReset").
pub(crate) const H2_MAX_LOCAL_ERROR_RESETS: usize = 1024;
/// Response bytes h2 may queue per stream beyond what the client's window
/// lets out (hyper's `max_send_buf_size`, 400 KiB by default): small, so a
/// stream the client stopped reading holds little.
pub(crate) const H2_MAX_SEND_BUF: usize = 64 * 1024;
/// A connection whose response bodies take no new data for this long while
/// waiting for the client (its flow-control window stays shut, or its socket
/// accepts no byte) is reset, and a single stalled response body is dropped
/// (its file closed).  nginx's `send_timeout` is 60 s; shorter here, since
/// a stalled response holds a file and a buffered chunk.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Response bodies one client address (IPv6: one /64) may have in progress
/// at once, over all its connections and streams.  Past it, a further body
/// waits (without opening its file or reading a byte) until one ends; small
/// bodies (up to [`SMALL_BODY`]) do not count.
pub const MAX_SENDING_PER_CLIENT: usize = 128;
/// Bodies up to this size (known exactly, in memory) go out in one frame and
/// hold no file: they need no place under [`MAX_SENDING_PER_CLIENT`].
pub const SMALL_BODY: u64 = 16 * 1024;

/// Every connection-level limit, with Apache-like defaults.  Tests start
/// listeners with small timeouts and caps through
/// [`crate::listener::serve_with_limits`].
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_request_line: usize,
    pub max_field_size: usize,
    pub max_fields: usize,
    pub max_head_bytes: usize,
    pub max_body_bytes: u64,
    pub tls_handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub drain_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub h2_max_streams: u32,
    pub h2_max_pending_resets: usize,
    pub h2_max_local_error_resets: usize,
    pub h2_max_send_buf: usize,
    pub send_timeout: Duration,
    pub max_sending_per_client: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_request_line: MAX_REQUEST_LINE,
            max_field_size: MAX_FIELD_SIZE,
            max_fields: MAX_FIELDS,
            max_head_bytes: MAX_HEAD_BYTES,
            max_body_bytes: MAX_BODY_BYTES,
            tls_handshake_timeout: TLS_HANDSHAKE_TIMEOUT,
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            drain_timeout: DRAIN_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_connections_per_ip: MAX_CONNECTIONS_PER_IP,
            h2_max_streams: H2_MAX_STREAMS,
            h2_max_pending_resets: H2_MAX_PENDING_RESETS,
            h2_max_local_error_resets: H2_MAX_LOCAL_ERROR_RESETS,
            h2_max_send_buf: H2_MAX_SEND_BUF,
            send_timeout: SEND_TIMEOUT,
            max_sending_per_client: MAX_SENDING_PER_CLIENT,
        }
    }
}

/// The limits of this process's listeners, set once at start from the
/// command line or htgate.toml (before the first [`Limits::process`]).
static PROCESS_LIMITS: std::sync::OnceLock<Limits> = std::sync::OnceLock::new();

impl Limits {
    /// Sets the process's limits; false if they were already set (or read:
    /// the first read fixes them, so every listener has the same ones).
    pub fn set_process(limits: Limits) -> bool {
        PROCESS_LIMITS.set(limits).is_ok()
    }

    /// The process's limits: what [`Limits::set_process`] set, else the
    /// defaults.
    pub fn process() -> &'static Limits {
        PROCESS_LIMITS.get_or_init(Limits::default)
    }

    /// The defaults with what an operator may set (`--shutdown-drain-seconds`,
    /// `--send-timeout-seconds`, `--max-sending-per-client`, or the
    /// htgate.toml keys of the same names); a send timeout of 0 and 0
    /// places mean 1.
    pub fn operator(drain_seconds: u64, send_timeout_seconds: u64, max_sending: usize) -> Limits {
        Limits {
            drain_timeout: Duration::from_secs(drain_seconds),
            send_timeout: Duration::from_secs(send_timeout_seconds.max(1)),
            max_sending_per_client: max_sending.max(1),
            ..Limits::default()
        }
    }

    /// How often a connection checks its timeouts: often enough that a
    /// short (test) timeout is not overshot by much.
    pub(crate) fn check_every(&self) -> Duration {
        let shortest = self
            .idle_timeout
            .min(self.body_read_timeout)
            .min(self.header_read_timeout)
            .min(self.send_timeout);
        (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(5))
    }
}

/// The request-target as it was on the request line (origin-form,
/// absolute-form or authority-form), for its length.
fn target_len(uri: &http::Uri) -> usize {
    let pq = uri.path_and_query().map(|pq| pq.as_str().len());
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(auth)) => scheme.len() + 3 + auth.as_str().len() + pq.unwrap_or(0),
        (None, Some(auth)) if pq.is_none() => auth.as_str().len(),
        _ => pq.unwrap_or(1),
    }
}

/// Whether `v` is a valid `Host` value: `uri-host [ ":" port ]`, where
/// uri-host is an IP literal in brackets or a reg-name (RFC 3986 §3.2.2).
/// An empty value is valid (RFC 9112 §3.2).
fn valid_host(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        match v.iter().position(|&b| b == b']') {
            Some(i) => (&v[..=i], &v[i + 1..]),
            None => return false,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(i) => (&v[..i], &v[i..]),
            None => (v, &v[v.len()..]),
        }
    };
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    let host_ok = if host.first() == Some(&b'[') {
        host.len() > 2
            && host[1..host.len() - 1]
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.' | b'v' | b'V'))
    } else {
        host.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                )
        })
    };
    port_ok && host_ok
}

/// HTTP/1 framing and routing rules hyper leaves to the server, as Apache
/// enforces them: a `Transfer-Encoding` other than exactly `chunked`
/// (RFC 9112 §6.1: chunked must be the final coding, only once; htgate
/// knows no other coding) and, for HTTP/1.1, a missing, repeated or
/// malformed `Host` (RFC 9112 §3.2 "MUST respond with 400"), and the
/// authority-form outside CONNECT (§3.2.3) are 400.
fn check_http1<B>(req: &http::Request<B>) -> Option<http::StatusCode> {
    let bad = Some(http::StatusCode::BAD_REQUEST);
    let headers = req.headers();
    let mut te = headers.get_all(http::header::TRANSFER_ENCODING).iter();
    if let Some(first) = te.next() {
        let chunked = first
            .as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(b"chunked");
        if !chunked || te.next().is_some() {
            return bad;
        }
    }
    let mut hosts = headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if req.version() == http::Version::HTTP_11 => return bad,
        (Some(_), Some(_)) => return bad,
        (Some(h), None) if !valid_host(h.as_bytes()) => return bad,
        _ => {}
    }
    let uri = req.uri();
    if uri.scheme().is_none() && uri.authority().is_some() && req.method() != http::Method::CONNECT
    {
        return bad;
    }
    None
}

/// Whether the connection must end after this request's answer: an
/// HTTP/1 request with a body in chunked coding may have carried a
/// `Content-Length` too (hyper drops it before the server sees it), and
/// RFC 9112 §6.1 then requires closing the connection, so that nothing
/// a front proxy framed differently is read as a next request.
pub(crate) fn close_after<B>(req: &http::Request<B>) -> bool {
    req.version() < http::Version::HTTP_2
        && req.headers().contains_key(http::header::TRANSFER_ENCODING)
}

/// The status a request must get before its handler runs, if any: 414 for
/// a request line over `max_request_line`, 431 for too many or too large
/// header fields, 413 for a declared body over `max_body_bytes`, 400 for
/// what HTTP/1 forbids and hyper lets through ([`check_http1`]).  Checked
/// in Apache's order (request line, then fields, then the body).
pub(crate) fn check_request<B>(
    req: &http::Request<B>,
    limits: &Limits,
) -> Option<http::StatusCode> {
    // "GET /x HTTP/1.1": method, space, target, space, 8 bytes of version.
    let line = req.method().as_str().len() + 1 + target_len(req.uri()) + 1 + 8;
    if line > limits.max_request_line {
        return Some(http::StatusCode::URI_TOO_LONG);
    }
    let headers = req.headers();
    if headers.len() > limits.max_fields {
        return Some(http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    if headers
        .iter()
        .any(|(name, value)| name.as_str().len() + 2 + value.len() > limits.max_field_size)
    {
        return Some(http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    // hyper has already refused a malformed or ambiguous Content-Length
    // (400); every value left is the same number.
    let declared = headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .filter_map(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .max();
    if declared.is_some_and(|len| len > limits.max_body_bytes) {
        return Some(http::StatusCode::PAYLOAD_TOO_LARGE);
    }
    if req.version() < http::Version::HTTP_2 {
        return check_http1(req);
    }
    // HTTP/3: no hyper in front to refuse a malformed Content-Length.
    if req.version() == http::Version::HTTP_3
        && crate::http3::content_length(req.headers()).is_err()
    {
        return Some(http::StatusCode::BAD_REQUEST);
    }
    check_http2(req)
}

/// HTTP/2: a `Host` field that names another authority than the
/// request's `:authority` is 400 (RFC 9113 §8.3.1: the two must agree;
/// which one routes would otherwise depend on the server).
fn check_http2<B>(req: &http::Request<B>) -> Option<http::StatusCode> {
    let authority = req.uri().authority()?;
    let conflict = req.headers().get_all(http::header::HOST).iter().any(|h| {
        !h.as_bytes()
            .eq_ignore_ascii_case(authority.as_str().as_bytes())
    });
    conflict.then_some(http::StatusCode::BAD_REQUEST)
}

/// The address a per-client count is kept under: IPv4 as is (also when
/// mapped into IPv6), IPv6 by its /64, since one client gets a whole /64
/// and could otherwise change address for every connection.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// What one client address holds: its open connections and the places for
/// response bodies in progress ([`MAX_SENDING_PER_CLIENT`]).
#[derive(Debug)]
struct ClientShare {
    conns: usize,
    sending: Arc<Semaphore>,
}

/// The connection caps: a semaphore for the total (taken before `accept`,
/// so that over the cap the server simply stops accepting) and a count per
/// client address, with that address's response-body places.
#[derive(Debug)]
pub(crate) struct ConnLimiter {
    total: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, ClientShare>>,
    max_per_ip: usize,
    max_sending: usize,
}

/// One admitted connection; dropping it gives both places back.
#[derive(Debug)]
pub(crate) struct ConnPermit {
    _total: OwnedSemaphorePermit,
    key: IpAddr,
    sending: Arc<Semaphore>,
    limiter: Arc<ConnLimiter>,
}

impl ConnPermit {
    /// The places for response bodies of this connection's client address
    /// (shared by all its connections).
    pub(crate) fn sending(&self) -> Arc<Semaphore> {
        Arc::clone(&self.sending)
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        // A poisoned lock only means another connection panicked while
        // counting; the map itself is still consistent enough to update.
        let mut map = self
            .limiter
            .per_ip
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(share) = map.get_mut(&self.key) {
            share.conns = share.conns.saturating_sub(1);
            if share.conns == 0 {
                map.remove(&self.key);
            }
        }
    }
}

impl ConnLimiter {
    #[cfg(test)]
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Arc<ConnLimiter> {
        ConnLimiter::with_sending(max_total, max_per_ip, MAX_SENDING_PER_CLIENT)
    }

    /// A limiter with `max_sending` response bodies in progress per
    /// client address.
    pub(crate) fn with_sending(
        max_total: usize,
        max_per_ip: usize,
        max_sending: usize,
    ) -> Arc<ConnLimiter> {
        Arc::new(ConnLimiter {
            // tokio's semaphore has a (very large) maximum; stay under it.
            total: Arc::new(Semaphore::new(max_total.clamp(1, Semaphore::MAX_PERMITS))),
            per_ip: Mutex::new(HashMap::new()),
            max_per_ip: max_per_ip.max(1),
            max_sending: max_sending.clamp(1, Semaphore::MAX_PERMITS),
        })
    }

    /// The process-wide limiter of the process's limits: every `serve` of
    /// a process (config mode runs one per listener) shares it, so the caps
    /// hold for the process and not per socket.
    pub(crate) fn process_wide() -> Arc<ConnLimiter> {
        static SHARED: std::sync::OnceLock<Arc<ConnLimiter>> = std::sync::OnceLock::new();
        Arc::clone(SHARED.get_or_init(|| {
            let l = Limits::process();
            ConnLimiter::with_sending(
                l.max_connections,
                l.max_connections_per_ip,
                l.max_sending_per_client,
            )
        }))
    }

    /// Waits for room under the total cap (the caller has not accepted
    /// yet: the waiting clients stay in the listen backlog).
    pub(crate) async fn room(self: &Arc<Self>) -> Option<OwnedSemaphorePermit> {
        // The semaphore is never closed; None would only mean it was.
        Arc::clone(&self.total).acquire_owned().await.ok()
    }

    /// Room under the total cap now, without waiting (QUIC: a client over
    /// the cap is refused, there is no backlog to wait in).
    pub(crate) fn try_room(self: &Arc<Self>) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.total).try_acquire_owned().ok()
    }

    /// Whether any room is left under the total cap right now.
    pub(crate) fn available(&self) -> usize {
        self.total.available_permits()
    }

    /// Admits a connection from `ip` holding `room`; None when that client
    /// already has its share of connections.
    pub(crate) fn admit(
        self: &Arc<Self>,
        room: OwnedSemaphorePermit,
        ip: IpAddr,
    ) -> Option<ConnPermit> {
        let key = client_key(ip);
        let mut map = self
            .per_ip
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let share = map.entry(key).or_insert_with(|| ClientShare {
            conns: 0,
            sending: Arc::new(Semaphore::new(self.max_sending)),
        });
        if share.conns >= self.max_per_ip {
            return None;
        }
        share.conns += 1;
        Some(ConnPermit {
            _total: room,
            key,
            sending: Arc::clone(&share.sending),
            limiter: Arc::clone(self),
        })
    }

    /// Open connections from `ip`.
    #[cfg(test)]
    pub(crate) fn open_from(&self, ip: IpAddr) -> usize {
        self.per_ip
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&client_key(ip))
            .map_or(0, |s| s.conns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn req(target: &str, headers: &[(&str, String)]) -> http::Request<()> {
        let mut b = http::Request::builder()
            .uri(target)
            .header("host", "localhost");
        for (k, v) in headers {
            b = b.header(*k, v.as_str());
        }
        b.body(()).expect("request")
    }

    #[test]
    fn an_http2_authority_that_conflicts_with_host_is_400() {
        let l = Limits::default();
        let h2 = |host: Option<&str>| {
            let mut b = http::Request::builder()
                .version(http::Version::HTTP_2)
                .uri("https://a.test/x");
            if let Some(h) = host {
                b = b.header("host", h);
            }
            b.body(()).expect("request")
        };
        assert_eq!(check_request(&h2(None), &l), None);
        assert_eq!(check_request(&h2(Some("A.test")), &l), None);
        assert_eq!(
            check_request(&h2(Some("b.test")), &l),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            check_request(&h2(Some("a.test:8443")), &l),
            Some(StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn request_line_limit_is_apaches() {
        let l = Limits::default();
        // "GET " + target + " HTTP/1.1" is exactly 8190 bytes: accepted.
        let fits = format!("/{}", "a".repeat(8190 - 4 - 9 - 1));
        assert_eq!(check_request(&req(&fits, &[]), &l), None);
        let over = format!("{fits}b");
        assert_eq!(
            check_request(&req(&over, &[]), &l),
            Some(StatusCode::URI_TOO_LONG)
        );
        // Absolute-form counts the scheme and authority too.
        let abs = format!("http://example.com{fits}");
        assert_eq!(
            check_request(&req(&abs, &[]), &l),
            Some(StatusCode::URI_TOO_LONG)
        );
    }

    #[test]
    fn header_field_size_and_count() {
        let l = Limits::default();
        let name = "x-big";
        let fits = "v".repeat(8190 - name.len() - 2);
        assert_eq!(check_request(&req("/", &[(name, fits.clone())]), &l), None);
        let over = format!("{fits}v");
        assert_eq!(
            check_request(&req("/", &[(name, over)]), &l),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let names: Vec<String> = (0..101).map(|i| format!("x-h{i}")).collect();
        let many: Vec<(&str, String)> = names.iter().map(|n| (n.as_str(), "1".into())).collect();
        // Host and 99 more: 100 fields are allowed.
        assert_eq!(
            check_request(&req("/", &many[..99]), &l),
            None,
            "100 fields are allowed"
        );
        assert_eq!(
            check_request(&req("/", &many[..100]), &l),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        assert_eq!(
            check_request(&req("/", &many), &l),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
    }

    #[test]
    fn declared_body_over_the_cap() {
        let l = Limits {
            max_body_bytes: 1000,
            ..Limits::default()
        };
        let cl = |n: &str| req("/", &[("content-length", n.to_string())]);
        assert_eq!(check_request(&cl("1000"), &l), None);
        assert_eq!(
            check_request(&cl("1001"), &l),
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        );
        assert_eq!(
            check_request(&cl("99999999999999999999"), &l),
            None,
            "hyper refuses an unparsable length itself"
        );
        // The default is Apache's 1 GiB.
        let d = Limits::default();
        assert_eq!(check_request(&cl(&(1u64 << 30).to_string()), &d), None);
        assert_eq!(
            check_request(&cl(&((1u64 << 30) + 1).to_string()), &d),
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        );
    }

    #[test]
    fn http1_framing_and_host() {
        let l = Limits::default();
        let bad = Some(StatusCode::BAD_REQUEST);
        let te = |v: &str| req("/", &[("transfer-encoding", v.to_string())]);
        assert_eq!(check_request(&te("chunked"), &l), None);
        assert_eq!(check_request(&te("Chunked "), &l), None);
        for v in [
            "identity, chunked",
            "chunked, chunked",
            ",chunked",
            "gzip",
            "xchunked",
        ] {
            assert_eq!(check_request(&te(v), &l), bad, "{v}");
        }
        let two = http::Request::builder()
            .uri("/")
            .header("host", "localhost")
            .header("transfer-encoding", "chunked")
            .header("transfer-encoding", "chunked")
            .body(())
            .expect("request");
        assert_eq!(check_request(&two, &l), bad);
        assert!(close_after(&te("chunked")));
        assert!(!close_after(&req("/", &[])));

        let no_host = http::Request::builder().uri("/").body(()).expect("request");
        assert_eq!(check_request(&no_host, &l), bad);
        let http10 = http::Request::builder()
            .uri("/")
            .version(http::Version::HTTP_10)
            .body(())
            .expect("request");
        assert_eq!(check_request(&http10, &l), None, "HTTP/1.0 needs no Host");
        let h2 = http::Request::builder()
            .uri("https://localhost/")
            .version(http::Version::HTTP_2)
            .body(())
            .expect("request");
        assert_eq!(check_request(&h2, &l), None, "HTTP/2 has :authority");
        let twice = http::Request::builder()
            .uri("/")
            .header("host", "localhost")
            .header("host", "evil.example")
            .body(())
            .expect("request");
        assert_eq!(check_request(&twice, &l), bad);
        for h in [
            "example.com",
            "example.com:8080",
            "[::1]:443",
            "127.0.0.1",
            "",
            "xn--bcher-kva.example",
            "%6c.example",
        ] {
            assert!(valid_host(h.as_bytes()), "{h}");
        }
        for h in [
            "a b",
            "../x",
            "a/b",
            "user@host",
            "host:80:80",
            "[::1",
            "host:8x",
            "h\\x",
        ] {
            assert!(!valid_host(h.as_bytes()), "{h}");
        }
        // Authority-form belongs to CONNECT only.
        assert_eq!(check_request(&req("localhost:80", &[]), &l), bad);
    }

    #[test]
    fn ipv6_clients_count_by_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(
            client_key(mapped),
            "192.0.2.7".parse::<IpAddr>().expect("ip")
        );
    }

    #[tokio::test]
    async fn per_ip_share_and_total_room() {
        let limiter = ConnLimiter::new(3, 2);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let other: IpAddr = "192.0.2.2".parse().expect("ip");
        let p1 = limiter
            .admit(limiter.room().await.expect("room"), ip)
            .expect("first");
        let p2 = limiter
            .admit(limiter.room().await.expect("room"), ip)
            .expect("second");
        // A third from the same client is refused and gives its room back.
        let room = limiter.room().await.expect("room");
        assert!(limiter.admit(room, ip).is_none());
        assert_eq!(limiter.available(), 1);
        let p3 = limiter
            .admit(limiter.room().await.expect("room"), other)
            .expect("another client");
        assert_eq!(limiter.available(), 0);
        // Over the total: waiting, not failing.
        let waiting = tokio::time::timeout(Duration::from_millis(50), limiter.room()).await;
        assert!(waiting.is_err(), "room should not be free yet");
        drop(p1);
        assert_eq!(limiter.open_from(ip), 1);
        let room = tokio::time::timeout(Duration::from_secs(5), limiter.room())
            .await
            .expect("room after a connection ended")
            .expect("permit");
        let p4 = limiter.admit(room, ip).expect("the client may come back");
        drop((p2, p3, p4));
        assert_eq!(limiter.open_from(ip), 0);
        assert_eq!(limiter.available(), 3);
    }

    #[test]
    fn check_interval_follows_short_timeouts() {
        assert_eq!(Limits::default().check_every(), Duration::from_secs(5));
        let short = Limits {
            header_read_timeout: Duration::from_millis(400),
            ..Limits::default()
        };
        assert_eq!(short.check_every(), Duration::from_millis(100));
    }
}
