//! The checks of certificates on demand: the sites' `on_demand` patterns
//! and `on_demand_any`, and `[acme.on_demand]` (required by either).

use super::{check_domain, AcmeConfig, SiteConfig};
use std::collections::HashMap;

/// The parts of an `ask` URL (`http://host:port/path?query`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskUrl {
    pub host: String,
    pub port: u16,
    /// Path and query, without `domain=`.
    pub path: String,
}

impl AskUrl {
    /// Splits a plain-HTTP URL; `Err` says what is wrong in plain words.
    pub fn parse(url: &str) -> Result<AskUrl, String> {
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(format!(
                "ask `{url}` must be a plain http:// URL (a service of the host, such as `http://127.0.0.1:5555/check`; https:// is not supported)"
            ));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
                Ok(port) => (h, port),
                Err(_) => return Err(format!("ask `{url}`: the port `{p}` is not a number")),
            },
            _ => (authority, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || authority.contains('@') {
            return Err(format!(
                "ask `{url}` has no host (like `http://127.0.0.1:5555/check`)"
            ));
        }
        if path.contains(['#', ' ']) || path.chars().any(char::is_control) {
            return Err(format!("ask `{url}`: the path may not hold spaces or `#`"));
        }
        Ok(AskUrl {
            host: host.to_string(),
            port,
            path,
        })
    }

    /// The request target asking about `domain` (an LDH name: nothing to
    /// escape).
    pub fn target(&self, domain: &str) -> String {
        let sep = if self.path.contains('?') { '&' } else { '?' };
        format!("{}{sep}domain={domain}", self.path)
    }
}

/// Checks `[acme.on_demand]` and the on-demand keys of `sites`;
/// `listed` maps every listed domain (of all sites) to its site, `taken`
/// holds what sites checked before took (sites are checked in several
/// passes, as the cluster's are).
pub(super) fn check(
    acme: Option<&AcmeConfig>,
    sites: &[SiteConfig],
    listed: &HashMap<String, String>,
    taken: &mut Taken,
    report: &mut dyn FnMut(usize, String),
) {
    let gate = acme.and_then(|a| a.on_demand.as_ref());
    if let Some(gate) = gate {
        let at = gate.span().start;
        let g = gate.get_ref();
        if let Err(m) = AskUrl::parse(g.ask.get_ref()) {
            report(g.ask.span().start, format!("[acme.on_demand] {m}"));
        }
        for (key, value, range) in [
            ("ask_timeout_ms", g.ask_timeout_ms, 1..=60_000),
            ("max_orders", u64::from(g.max_orders), 1..=100_000),
            (
                "max_orders_per_site",
                u64::from(g.max_orders_per_site),
                1..=100_000,
            ),
            ("rate_window_seconds", g.rate_window_seconds, 1..=7 * 86_400),
            ("deny_cache_seconds", g.deny_cache_seconds, 1..=7 * 86_400),
            ("max_pending", g.max_pending as u64, 1..=100_000),
            (
                "max_pending_per_site",
                g.max_pending_per_site as u64,
                1..=100_000,
            ),
        ] {
            if !range.contains(&value) {
                report(
                    at,
                    format!(
                        "[acme.on_demand] {key} = {value} is out of range ({} to {})",
                        range.start(),
                        range.end()
                    ),
                );
            }
        }
        for a in &g.public_addresses {
            if a.get_ref().parse::<std::net::IpAddr>().is_err() {
                report(
                    a.span().start,
                    format!(
                        "[acme.on_demand] public_addresses: `{}` is not an IP address",
                        a.get_ref()
                    ),
                );
            }
        }
        if g.max_pending_per_site > g.max_pending {
            report(
                at,
                format!(
                    "[acme.on_demand] max_pending_per_site = {} is more than max_pending = {}",
                    g.max_pending_per_site, g.max_pending
                ),
            );
        }
    }
    for site in sites {
        let name = site.name.get_ref();
        let uses = !site.on_demand.is_empty() || site.on_demand_any;
        if uses && gate.is_none() {
            report(
                site.name.span().start,
                format!("site `{name}`: on_demand needs an [acme.on_demand] table with an `ask` URL (it decides which names get a certificate)"),
            );
        }
        if uses && !site.acme {
            report(
                site.name.span().start,
                format!("site `{name}`: on_demand needs `acme = true`"),
            );
        }
        if site.on_demand_any {
            match &taken.catch_all {
                Some(other) => report(
                    site.name.span().start,
                    format!("site `{name}`: on_demand_any is set by site `{other}` already (at most one site takes every other name)"),
                ),
                None => taken.catch_all = Some(name.clone()),
            }
        }
        for p in &site.on_demand {
            let pattern = p.get_ref();
            let at = p.span().start;
            if let Err(m) = check_domain(pattern) {
                report(at, format!("on_demand: {m}"));
            } else if pattern.parse::<std::net::Ipv4Addr>().is_ok() {
                report(at, format!("on_demand: `{pattern}` is an IP address; certificates on demand are for DNS names"));
            } else if let Some(other) = listed.get(pattern) {
                report(
                    at,
                    format!("on_demand: `{pattern}` is a domain of site `{other}`"),
                );
            } else if let Some((wildcard, other)) = shadowing(pattern, listed) {
                report(at, format!("on_demand: `{pattern}` is under `{wildcard}` of site `{other}`: those names are that site's (listed domains come first)"));
            } else if let Some(other) = taken.patterns.insert(pattern.clone(), name.clone()) {
                report(
                    at,
                    format!(
                        "on_demand: `{pattern}` is an on_demand pattern of site `{other}` already"
                    ),
                );
            }
        }
    }
}

/// The on-demand patterns and the catch-all site of the sites checked so
/// far.
#[derive(Debug, Default)]
pub(super) struct Taken {
    patterns: HashMap<String, String>,
    catch_all: Option<String>,
}

impl Taken {
    /// What `sites` (checked already) took.
    pub(super) fn of(sites: &[SiteConfig]) -> Taken {
        let mut taken = Taken::default();
        for s in sites {
            for p in &s.on_demand {
                taken
                    .patterns
                    .insert(p.get_ref().clone(), s.name.get_ref().clone());
            }
            if s.on_demand_any && taken.catch_all.is_none() {
                taken.catch_all = Some(s.name.get_ref().clone());
            }
        }
        taken
    }
}

/// The listed wildcard (and its site) that takes every name `pattern`
/// stands for, if any: routing looks at listed domains first, so such a
/// pattern would never be used.
fn shadowing<'a>(
    pattern: &str,
    listed: &'a HashMap<String, String>,
) -> Option<(&'a String, &'a String)> {
    // One name the pattern stands for: a label is enough, since a listed
    // wildcard takes any depth below it.
    let probe = match pattern.strip_prefix("*.") {
        Some(base) => format!("x.{base}"),
        None => pattern.to_string(),
    };
    listed.iter().find(|(domain, _)| {
        domain
            .strip_prefix('*')
            .is_some_and(|suffix| probe.len() > suffix.len() && probe.ends_with(suffix))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_under_a_listed_wildcard_is_shadowed() {
        let listed: HashMap<String, String> = [("*.example.com", "a"), ("shop.example.org", "b")]
            .iter()
            .map(|(d, s)| (d.to_string(), s.to_string()))
            .collect();
        for shadowed in ["x.example.com", "*.shop.example.com", "a.b.example.com"] {
            assert!(shadowing(shadowed, &listed).is_some(), "{shadowed}");
        }
        for free in [
            "example.com",
            "*.example.org",
            "*.shop.example.org",
            "xexample.com",
        ] {
            assert!(shadowing(free, &listed).is_none(), "{free}");
        }
    }

    #[test]
    fn ask_urls_split_and_take_the_domain() {
        let u = AskUrl::parse("http://127.0.0.1:5555/check").expect("valid");
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 5555));
        assert_eq!(u.target("a.example"), "/check?domain=a.example");
        let u = AskUrl::parse("http://ask.internal?key=1").expect("valid");
        assert_eq!((u.host.as_str(), u.port), ("ask.internal", 80));
        assert_eq!(u.target("a.example"), "/?key=1&domain=a.example");
        let u = AskUrl::parse("http://[::1]:81/").expect("valid");
        assert_eq!((u.host.as_str(), u.port), ("::1", 81));
        for bad in [
            "https://x/",
            "x/check",
            "http://:80/",
            "http://h:port/",
            "http://u@h/",
        ] {
            assert!(AskUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
