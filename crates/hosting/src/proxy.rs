//! Requests through a trusted front proxy (a load balancer, a CDN): what
//! it says about the client is believed only from a peer listed in
//! `trusted_proxies`.
//!
//! - **The client's address**, as mod_remoteip finds it (`RemoteIPHeader
//!   X-Forwarded-For` with `RemoteIPTrustedProxy`, `remoteip_modify_request`):
//!   the list is walked from the right, the nearest hop first; each
//!   address that is itself a trusted proxy is passed through, and the
//!   first one that is not is the client.  A list of trusted proxies only
//!   gives its leftmost entry.  An entry that is not an address (`unknown`,
//!   an obfuscated `Forwarded` name, garbage) ends the walk at the last good
//!   one, as Apache does.  Without `X-Forwarded-For`, RFC 7239's
//!   `Forwarded: for=` is read the same way.  `%{REMOTE_ADDR}`, `Require
//!   ip`, `Allow/Deny from`, the access log's `%h` and PHP's `REMOTE_ADDR`
//!   all see the result.
//! - **HTTPS**: any of `X-Forwarded-Proto: https`, `Forwarded: proto=https`,
//!   `X-Forwarded-SSL: on` or `HTTPS: on` from a trusted proxy makes the
//!   request an HTTPS one for customers' rules (`%{HTTPS}`,
//!   `%{REQUEST_SCHEME}`, `%{SERVER_PORT}`, and the `HTTPS: on` /
//!   `X-Forwarded-Proto: https` headers hosting recipes test), so that
//!   force-HTTPS rules behind a balancer do not loop.
//!
//! An untrusted peer's headers change nothing here (and the engine removes
//! its HTTPS claims, see `engine::respond`).

use arc_swap::ArcSwap;
use htgate_server::{ConnInfo, Handler, HandlerFuture};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// At most this many hops of a forwarding list are walked: a client can
/// prepend any number of entries, and only the trusted hops at the right
/// end matter.
const MAX_HOPS: usize = 32;

/// Whether a trusted proxy's headers say the client used HTTPS.
pub fn says_https(headers: &http::HeaderMap) -> bool {
    let is = |name: &str, want: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.trim().eq_ignore_ascii_case(want))
    };
    is("x-forwarded-proto", "https")
        || is("x-forwarded-ssl", "on")
        || is("https", "on")
        || headers
            .get_all("forwarded")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split([';', ',']))
            .filter_map(|p| p.split_once('='))
            .any(|(k, v)| {
                k.trim().eq_ignore_ascii_case("proto")
                    && v.trim().trim_matches('"').eq_ignore_ascii_case("https")
            })
}

/// One `X-Forwarded-For` entry: an address, maybe with a port (`[::1]:80`,
/// `192.0.2.1:4711`).
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let s = raw.trim().trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    // `[2001:db8::1]` without a port
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse().ok())
}

/// The hops a request names, nearest last: `X-Forwarded-For`, else the
/// `for=` parameters of `Forwarded`.
fn hops(headers: &http::HeaderMap) -> Vec<String> {
    let xff: Vec<String> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if !xff.is_empty() {
        return xff;
    }
    headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| v.trim().to_string())
            })
        })
        .collect()
}

/// The client's address for a request from the trusted proxy `peer`
/// (see the module comment).
pub fn client_address(
    headers: &http::HeaderMap,
    peer: IpAddr,
    trusted: impl Fn(IpAddr) -> bool,
) -> IpAddr {
    let mut client = peer;
    for hop in hops(headers).iter().rev().take(MAX_HOPS) {
        if !trusted(client) {
            break;
        }
        match parse_hop(hop) {
            Some(ip) => client = ip,
            None => break,
        }
    }
    client
}

/// The connection as a request's handler sees it: from a trusted proxy,
/// the client's address and the proxy's word on HTTPS.
pub fn resolve(
    headers: &http::HeaderMap,
    conn: &ConnInfo,
    trusted: impl Fn(IpAddr) -> bool,
) -> Option<ConnInfo> {
    if !trusted(conn.remote.ip()) {
        return None;
    }
    let mut c = conn.clone();
    c.trusted_proxy = true;
    c.proxied_https = !conn.tls && says_https(headers);
    let client = client_address(headers, conn.remote.ip(), &trusted);
    c.remote = SocketAddr::new(client, conn.remote.port());
    Some(c)
}

/// Config mode's outermost handler: resolves the client before the access
/// log and the sites see the request.
pub(crate) struct Proxied {
    pub inner: Arc<dyn Handler>,
    pub hosting: Arc<ArcSwap<super::Hosting>>,
}

impl Handler for Proxied {
    fn handle(
        &self,
        req: http::Request<htgate_server::RequestBody>,
        conn: Arc<ConnInfo>,
    ) -> HandlerFuture {
        let hosting = self.hosting.load();
        let conn = match resolve(req.headers(), &conn, |ip| hosting.is_trusted(ip)) {
            Some(c) => Arc::new(c),
            None => conn,
        };
        self.inner.handle(req, conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    /// 10.0.0.0/8 and 192.0.2.7 are the proxies.
    fn trusted(a: IpAddr) -> bool {
        match a {
            IpAddr::V4(v4) => v4.octets()[0] == 10 || v4 == std::net::Ipv4Addr::new(192, 0, 2, 7),
            IpAddr::V6(_) => false,
        }
    }

    #[test]
    fn every_https_signal_of_a_proxy_counts() {
        assert!(!says_https(&headers(&[])));
        for h in [
            ("x-forwarded-proto", "https"),
            ("x-forwarded-proto", "HTTPS"),
            ("forwarded", "for=198.51.100.1;proto=https"),
            ("forwarded", "for=198.51.100.1; Proto=\"https\""),
            ("x-forwarded-ssl", "on"),
            ("https", "on"),
        ] {
            assert!(says_https(&headers(&[h])), "{h:?}");
        }
        for h in [
            ("x-forwarded-proto", "http"),
            ("https", "off"),
            ("x-forwarded-ssl", "off"),
            ("forwarded", "for=https"),
        ] {
            assert!(!says_https(&headers(&[h])), "{h:?}");
        }
    }

    #[test]
    fn the_walk_stops_at_the_first_untrusted_hop() {
        let peer = ip("10.0.0.1");
        // client, then a second proxy of ours
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 10.1.1.1")]);
        assert_eq!(client_address(&h, peer, trusted), ip("203.0.113.9"));
        // what the client itself wrote at the left is not believed
        let h = headers(&[("x-forwarded-for", "127.0.0.1, 198.51.100.20, 10.1.1.1")]);
        assert_eq!(client_address(&h, peer, trusted), ip("198.51.100.20"));
        // two headers are one list
        let h = headers(&[
            ("x-forwarded-for", "127.0.0.1"),
            ("x-forwarded-for", "198.51.100.20"),
        ]);
        assert_eq!(client_address(&h, peer, trusted), ip("198.51.100.20"));
        // only trusted hops: the leftmost
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 192.0.2.7")]);
        assert_eq!(client_address(&h, peer, trusted), ip("10.9.9.9"));
        // garbage ends the walk at the last good address
        let h = headers(&[("x-forwarded-for", "198.51.100.20, unknown, 10.1.1.1")]);
        assert_eq!(client_address(&h, peer, trusted), ip("10.1.1.1"));
        // ports and brackets
        let h = headers(&[("x-forwarded-for", "[2001:db8::1]:4711")]);
        assert_eq!(client_address(&h, peer, trusted), ip("2001:db8::1"));
        let h = headers(&[("x-forwarded-for", "198.51.100.20:5000")]);
        assert_eq!(client_address(&h, peer, trusted), ip("198.51.100.20"));
    }

    #[test]
    fn forwarded_for_is_read_without_x_forwarded_for() {
        let peer = ip("10.0.0.1");
        let h = headers(&[(
            "forwarded",
            "for=198.51.100.20;proto=https, for=\"[2001:db8::7]:80\"",
        )]);
        assert_eq!(client_address(&h, peer, trusted), ip("2001:db8::7"));
        let h = headers(&[("forwarded", "for=198.51.100.20, for=10.2.2.2")]);
        assert_eq!(client_address(&h, peer, trusted), ip("198.51.100.20"));
        let h = headers(&[("forwarded", "for=_hidden, for=10.2.2.2")]);
        assert_eq!(client_address(&h, peer, trusted), ip("10.2.2.2"));
    }

    #[test]
    fn an_untrusted_peers_headers_change_nothing() {
        let conn = ConnInfo {
            remote: "198.51.100.5:4000".parse().expect("addr"),
            local: "127.0.0.1:80".parse().expect("addr"),
            tls: false,
            sni: None,
            trusted_proxy: false,
            proxied_https: false,
        };
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ]);
        assert!(resolve(&h, &conn, trusted).is_none());
        let from_proxy = ConnInfo {
            remote: "10.0.0.1:4000".parse().expect("addr"),
            ..conn
        };
        let c = resolve(&h, &from_proxy, trusted).expect("trusted");
        assert!(c.trusted_proxy && c.proxied_https);
        assert_eq!(c.remote, "203.0.113.9:4000".parse().expect("addr"));
    }

    #[test]
    fn security_md_names_the_hop_limit() {
        let security = include_str!("../../../SECURITY.md");
        assert!(security.contains(&format!("read from a trusted proxy | {MAX_HOPS} |")));
        assert!(security.contains(&format!("at most {MAX_HOPS} hops are read")));
    }

    #[test]
    fn a_long_list_is_walked_a_bounded_number_of_hops() {
        let mut list = vec!["203.0.113.9".to_string()];
        list.extend((0..1000).map(|i| format!("10.0.{}.{}", i / 250, i % 250)));
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_str(&list.join(", ")).expect("value"),
        );
        let got = client_address(&h, ip("10.0.0.1"), trusted);
        assert!(trusted(got), "stopped within the trusted hops: {got}");
    }
}
