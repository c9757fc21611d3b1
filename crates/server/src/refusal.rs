//! Every refusal by a limit leaves a trace: a counter in `/metrics`
//! (`htgate_refusals_total{site="",reason}`: no site is known yet) and a warning in the error log with the
//! client's address (and the host it asked for, when known).
//!
//! The log is rate-limited, so that an attack cannot flood it: at most one
//! line per reason and client address (IPv6: its /64) every
//! [`LOG_EVERY`]; the lines held back are counted, said on that key's next
//! line (`suppressed=N`) and summed up in one line at most every
//! [`SUMMARY_EVERY`].  The counter counts every refusal.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One line per reason and client address at most this often.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);
/// The "suppressed" summary at most this often.
pub(crate) const SUMMARY_EVERY: Duration = Duration::from_secs(60);
/// Keys remembered at most; past it, the stale ones are forgotten (an
/// attacker with many addresses cannot grow the map without bound).
const MAX_KEYS: usize = 4096;

/// Why a request or connection was refused or cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Reason {
    /// 414: request line over `LimitRequestLine`.
    UriTooLong,
    /// 431: too many or too large header fields (also hyper's bare 431).
    HeaderFieldsTooLarge,
    /// 413: declared body over the cap.
    BodyTooLarge,
    /// 400: HTTP/1 framing or `Host` refused by the listener.
    BadRequest,
    /// hyper's parser refused the request (400, or the connection closed).
    ParseError,
    /// A chunked HTTP/1 body grew past the body cap.
    BodyOverCap,
    /// A connection over the per-client-address cap.
    PerClientConnections,
    /// A QUIC connection over the total cap (refused: UDP has no backlog).
    ConnectionCap,
    /// The TLS handshake did not complete in time.
    TlsHandshakeTimeout,
    /// No (complete) first request within the header read timeout.
    HeaderTimeout,
    /// An HTTP/1 request body stalled.
    BodyReadTimeout,
    /// A connection with no request and no bytes moving.
    IdleTimeout,
    /// Response bodies that take no data, or a socket that accepts no byte.
    SendTimeout,
    /// HTTP/2: the server ended the connection with GOAWAY (floods of
    /// resets, protocol errors, too many CONTINUATION frames).
    H2Goaway,
}

impl Reason {
    /// The `reason` label in `/metrics` and the log.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Reason::UriTooLong => "uri_too_long",
            Reason::HeaderFieldsTooLarge => "header_fields_too_large",
            Reason::BodyTooLarge => "body_too_large",
            Reason::BadRequest => "bad_request",
            Reason::ParseError => "parse_error",
            Reason::BodyOverCap => "body_over_cap",
            Reason::PerClientConnections => "per_client_connections",
            Reason::ConnectionCap => "connection_cap",
            Reason::TlsHandshakeTimeout => "tls_handshake_timeout",
            Reason::HeaderTimeout => "header_timeout",
            Reason::BodyReadTimeout => "body_read_timeout",
            Reason::IdleTimeout => "idle_timeout",
            Reason::SendTimeout => "send_timeout",
            Reason::H2Goaway => "h2_goaway",
        }
    }

    /// The refusal of a status [`super::limits::check_request`] gave.
    pub(crate) fn of_status(status: http::StatusCode) -> Reason {
        match status {
            http::StatusCode::URI_TOO_LONG => Reason::UriTooLong,
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Reason::HeaderFieldsTooLarge,
            http::StatusCode::PAYLOAD_TOO_LARGE => Reason::BodyTooLarge,
            _ => Reason::BadRequest,
        }
    }
}

struct Seen {
    last: Instant,
    suppressed: u64,
}

struct LogState {
    keys: HashMap<(Reason, IpAddr), Seen>,
    suppressed_total: u64,
    last_summary: Instant,
}

fn state() -> &'static Mutex<LogState> {
    static STATE: std::sync::OnceLock<Mutex<LogState>> = std::sync::OnceLock::new();
    STATE.get_or_init(|| {
        Mutex::new(LogState {
            keys: HashMap::new(),
            suppressed_total: 0,
            last_summary: Instant::now(),
        })
    })
}

/// The address a log key is kept under: IPv6 by its /64 (one client).
fn key_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        IpAddr::V4(_) => ip,
    }
}

/// What to log for one refusal: `Some(suppressed since the last line)`
/// when a line is due, and the summary's count when one is due.
fn decide(st: &mut LogState, reason: Reason, ip: IpAddr, now: Instant) -> (Option<u64>, u64) {
    let key = (reason, key_of(ip));
    let line = match st.keys.get_mut(&key) {
        Some(seen) if now.duration_since(seen.last) < LOG_EVERY => {
            seen.suppressed += 1;
            st.suppressed_total += 1;
            None
        }
        Some(seen) => {
            let held = seen.suppressed;
            seen.last = now;
            seen.suppressed = 0;
            Some(held)
        }
        None => {
            if st.keys.len() >= MAX_KEYS {
                st.keys
                    .retain(|_, seen| now.duration_since(seen.last) < LOG_EVERY);
            }
            if st.keys.len() < MAX_KEYS {
                st.keys.insert(
                    key,
                    Seen {
                        last: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            } else {
                // Still full of fresh keys: an attack from many addresses;
                // the summary says how much was held back.
                st.suppressed_total += 1;
                None
            }
        }
    };
    let mut summary = 0;
    if now.duration_since(st.last_summary) >= SUMMARY_EVERY {
        summary = std::mem::take(&mut st.suppressed_total);
        st.last_summary = now;
    }
    (line, summary)
}

/// Counts a refusal and logs it (rate-limited).  `host`: the SNI name or
/// `Host` the client asked for, when known; `detail`: what exactly.
pub(crate) fn record(reason: Reason, client: IpAddr, host: Option<&str>, detail: &str) {
    htgate_telemetry::metrics::refusal_unrouted(reason.label());
    let (line, summary) = {
        let mut st = state()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        decide(&mut st, reason, client, Instant::now())
    };
    if let Some(suppressed) = line {
        tracing::warn!(
            reason = reason.label(),
            %client,
            host = host.unwrap_or("-"),
            suppressed,
            "refused: {detail}"
        );
    }
    if summary > 0 {
        tracing::warn!(
            suppressed = summary,
            "refusal log lines suppressed in the last {} s (see htgate_refusals_total)",
            SUMMARY_EVERY.as_secs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_reason_and_address_per_window() {
        let t0 = Instant::now();
        let mut st = LogState {
            keys: HashMap::new(),
            suppressed_total: 0,
            last_summary: t0,
        };
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        assert_eq!(decide(&mut st, Reason::SendTimeout, a, t0).0, Some(0));
        for _ in 0..1000 {
            assert_eq!(decide(&mut st, Reason::SendTimeout, a, t0).0, None);
        }
        // Another reason, another address: their own lines.
        assert_eq!(decide(&mut st, Reason::H2Goaway, a, t0).0, Some(0));
        assert_eq!(decide(&mut st, Reason::SendTimeout, b, t0).0, Some(0));
        // One /64 is one client.
        let v6a: IpAddr = "2001:db8::1".parse().expect("ip");
        let v6b: IpAddr = "2001:db8::ffff:2".parse().expect("ip");
        assert_eq!(decide(&mut st, Reason::SendTimeout, v6a, t0).0, Some(0));
        assert_eq!(decide(&mut st, Reason::SendTimeout, v6b, t0).0, None);
        // After the window: a line saying how many were held back.
        let later = t0 + LOG_EVERY;
        assert_eq!(decide(&mut st, Reason::SendTimeout, a, later).0, Some(1000));
        // The summary: once per SUMMARY_EVERY, with everything held back.
        let (_, summary) = decide(&mut st, Reason::SendTimeout, b, t0 + SUMMARY_EVERY);
        assert_eq!(summary, 1001);
        let (_, summary) = decide(&mut st, Reason::SendTimeout, b, t0 + SUMMARY_EVERY);
        assert_eq!(summary, 0);
        // Many addresses: the map stays bounded.
        for i in 0..(3 * MAX_KEYS as u32) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            decide(&mut st, Reason::IdleTimeout, ip, later);
        }
        assert!(st.keys.len() <= MAX_KEYS);
    }

    #[test]
    fn refusals_are_counted_by_reason() {
        let ip: IpAddr = "198.51.100.7".parse().expect("ip");
        let before = htgate_telemetry::metrics::refusals_of("body_read_timeout");
        for _ in 0..3 {
            record(Reason::BodyReadTimeout, ip, None, "test");
        }
        assert_eq!(
            htgate_telemetry::metrics::refusals_of("body_read_timeout"),
            before + 3
        );
        assert!(htgate_telemetry::metrics::render(None)
            .contains("htgate_refusals_total{site=\"\",reason=\"body_read_timeout\"}"));
    }
}
