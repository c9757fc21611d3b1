//! Config mode: many sites behind one set of listeners, the way a shared
//! host runs them.
//!
//! `Front` is the request handler in front of the engine.  In order, for
//! every request: ACME HTTP-01 answers (before anything a customer wrote
//! can interfere), site selection by Host, the SNI/Host check (421), the
//! trusted-proxy decision, the site's `force_https`, then the site's
//! `.htaccess` programs, and HSTS on HTTPS answers.

pub mod acme;
mod cert_metrics;
pub mod certs;
pub mod cluster;
mod cluster_sync;
pub mod config;
pub mod proxy;
pub mod quick;
mod reload;
mod routing;
pub mod run;
pub mod tls;
mod watch;

use arc_swap::ArcSwap;
use htgate_engine::site::Site;
use htgate_server::{ConnInfo, Handler, HandlerFuture};
use http::{HeaderValue, Method, StatusCode};
use routing::DomainMap;
use std::net::IpAddr;
use std::sync::Arc;

/// One site as config mode runs it.
pub struct HostedSite {
    pub name: String,
    /// `name`, shared by the error-log context of its requests.
    pub log_name: Arc<str>,
    pub site: Arc<Site>,
    /// The Strict-Transport-Security value, when HSTS is on.
    pub hsts: Option<HeaderValue>,
    pub force_https: bool,
    /// Its metrics label and where its access-log lines go (its own
    /// file, the shared one, or none).
    pub log_route: htgate_server::access_log::Route,
}

/// One immutable view of all sites; replaced as a whole on reload.
pub struct Hosting {
    pub sites: Vec<Arc<HostedSite>>,
    pub map: DomainMap<usize>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub challenges: Option<crate::acme::Challenges>,
    /// In a cluster: asked for HTTP-01 answers this node has not heard of
    /// yet (the CA may come here before the watch delivered them).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// The public HTTPS port (redirects of `force_https`).
    pub https_port: u16,
}

impl Hosting {
    /// The site for a host name; unknown names get the first site, as
    /// Apache gives them its first virtual host.
    pub fn site_for(&self, host: Option<&str>) -> Option<&Arc<HostedSite>> {
        let i = host.and_then(|h| self.map.lookup(h).copied()).unwrap_or(0);
        self.sites.get(i)
    }

    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        is_trusted_in(&self.trusted_proxies, ip)
    }
}

/// Whether `ip` (an IPv4-mapped IPv6 address as its IPv4 one) is in
/// `trusted_proxies`.
pub fn is_trusted_in(proxies: &[ipnet::IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    proxies.iter().any(|n| n.contains(&ip))
}

/// Parses `trusted_proxies` entries (addresses or networks).
pub(crate) fn parse_proxies(list: &[String]) -> Vec<ipnet::IpNet> {
    list.iter()
        .filter_map(|s| {
            s.parse::<ipnet::IpNet>()
                .ok()
                .or_else(|| s.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
        })
        .collect()
}

/// The handler of config mode.
pub struct Front {
    pub hosting: Arc<ArcSwap<Hosting>>,
}

/// The host name a request is for (no port, lower case): the request
/// target's authority (an absolute-form target, whose `Host` RFC 9112
/// §3.2.2 says to ignore, or HTTP/2's `:authority`), else the Host header.
pub(crate) fn request_host<B>(req: &http::Request<B>) -> Option<std::borrow::Cow<'_, str>> {
    // An absolute-form target's authority wins over Host (without any
    // `user@` part and port); borrowed unless it must be lower-cased: the
    // access-log router and Front both look it up for every request.
    let raw = match req.uri().authority() {
        Some(a) => a.host(),
        None => req.headers().get(http::header::HOST)?.to_str().ok()?,
    };
    let raw = raw.trim();
    let host = if let Some(rest) = raw.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        raw.rsplit_once(':').map(|(h, _)| h).unwrap_or(raw)
    };
    let host = host.trim_end_matches('.');
    if host.is_empty() {
        None
    } else if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(std::borrow::Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(std::borrow::Cow::Borrowed(host))
    }
}

fn plain_response(status: StatusCode, body: String) -> http::Response<htgate_server::Body> {
    let mut resp = http::Response::new(htgate_server::full_body(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    resp
}

impl Handler for Front {
    fn handle(
        &self,
        req: http::Request<htgate_server::RequestBody>,
        conn: Arc<ConnInfo>,
    ) -> HandlerFuture {
        let hosting = self.hosting.load_full();
        Box::pin(async move {
            let method = req.method().clone();
            // ACME first: a customer's rewrite, access rule or forced
            // redirect must not be able to break certificate issuance.
            if let (Some(ch), true) = (
                &hosting.challenges,
                req.uri().path().starts_with(crate::acme::CHALLENGE_PREFIX),
            ) {
                let mut answer = ch.answer_path(req.uri().path());
                if let (None, Some(cluster)) = (&answer, &hosting.cluster) {
                    let token = req
                        .uri()
                        .path()
                        .strip_prefix(crate::acme::CHALLENGE_PREFIX)
                        .unwrap_or("");
                    answer = cluster.challenge_answer(token).await;
                }
                return match answer {
                    Some(answer) if method == Method::GET || method == Method::HEAD => {
                        plain_response(StatusCode::OK, answer)
                    }
                    _ => htgate_content::status_page::error_response(
                        StatusCode::NOT_FOUND,
                        &method,
                        None,
                    ),
                };
            }
            let host = request_host(&req).map(std::borrow::Cow::into_owned);
            if let (true, Some(sni), Some(h)) = (conn.tls, conn.sni.as_deref(), host.as_deref()) {
                // Apache answers 421 when the Host names another virtual
                // host than the one the TLS session was made for: the
                // session's certificate was chosen for the SNI name.
                let by_sni = hosting.map.lookup(sni).copied();
                let by_host = hosting.map.lookup(h).copied();
                if by_sni != by_host {
                    return htgate_content::status_page::error_response(
                        StatusCode::MISDIRECTED_REQUEST,
                        &method,
                        None,
                    );
                }
            }
            let Some(hs) = hosting.site_for(host.as_deref()).cloned() else {
                return htgate_content::status_page::error_response(
                    StatusCode::NOT_FOUND,
                    &method,
                    None,
                );
            };
            // `proxy::Proxied` has resolved a trusted proxy's word already.
            let https = conn.tls || conn.proxied_https;
            if hs.force_https && !https {
                let target = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                let host_name = host
                    .clone()
                    .or_else(|| hs.site.server_names.first().cloned())
                    .unwrap_or_default();
                let host_part = if host_name.contains(':') {
                    format!("[{host_name}]")
                } else {
                    host_name
                };
                let location = if hosting.https_port == 443 {
                    format!("https://{host_part}{target}")
                } else {
                    format!("https://{host_part}:{}{target}", hosting.https_port)
                };
                return htgate_content::status_page::error_response(
                    StatusCode::MOVED_PERMANENTLY,
                    &method,
                    Some(&location),
                );
            }
            // Everything logged while the site answers names the site and
            // the client, as Apache's error log does.
            let ctx = Arc::new(htgate_telemetry::logs::context::RequestContext {
                site: hs.log_name.clone(),
                client: conn.remote,
            });
            let mut resp = htgate_telemetry::logs::context::in_request(
                ctx,
                htgate_server::site_handler::serve_site(hs.site.clone(), req, conn),
            )
            .await;
            if https {
                if let Some(v) = &hs.hsts {
                    // A customer's own `Header set Strict-Transport-Security`
                    // is more specific than the host's default: keep it.
                    if !resp
                        .headers()
                        .contains_key(http::header::STRICT_TRANSPORT_SECURITY)
                    {
                        resp.headers_mut()
                            .insert(http::header::STRICT_TRANSPORT_SECURITY, v.clone());
                    }
                }
            }
            resp
        })
    }
}

/// Config mode: the route of the site the request is for, chosen as
/// [`Front`] chooses it (by Host; an unknown name
/// gets the first site).
pub(crate) fn for_hosting(front: Arc<Front>) -> htgate_server::access_log::AccessLogged {
    let hosting = front.hosting.clone();
    htgate_server::access_log::AccessLogged {
        inner: front,
        router: Arc::new(
            move |req: &http::Request<htgate_server::RequestBody>, _conn: &ConnInfo| {
                let host = request_host(req);
                match hosting.load().site_for(host.as_deref()) {
                    Some(hs) => hs.log_route.clone(),
                    None => htgate_server::access_log::Route {
                        site: Arc::new(String::new()),
                        log: None,
                    },
                }
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absolute_form_target_routes_by_its_authority() {
        let req = |uri: &str, host: &str| {
            http::Request::builder()
                .uri(uri)
                .header("host", host)
                .body(())
                .expect("request")
        };
        assert_eq!(
            request_host(&req("/x", "A.test:80")).as_deref(),
            Some("a.test")
        );
        // RFC 9112 §3.2.2: the target's authority, not Host
        assert_eq!(
            request_host(&req("http://b.test/x", "a.test")).as_deref(),
            Some("b.test")
        );
        assert_eq!(
            request_host(&req("http://user@c.test:8080/x", "a.test")).as_deref(),
            Some("c.test")
        );
    }

    #[test]
    fn proxies_parse_addresses_and_networks() {
        let list = parse_proxies(&["10.0.0.0/8".into(), "192.0.2.7".into(), "::1".into()]);
        assert_eq!(list.len(), 3);
        let h = Hosting {
            sites: Vec::new(),
            map: DomainMap::default(),
            trusted_proxies: list,
            challenges: None,
            cluster: None,
            https_port: 443,
        };
        assert!(h.is_trusted("10.1.2.3".parse().expect("ip")));
        assert!(h.is_trusted("::ffff:192.0.2.7".parse().expect("ip")));
        assert!(!h.is_trusted("192.0.2.8".parse().expect("ip")));
    }
}
