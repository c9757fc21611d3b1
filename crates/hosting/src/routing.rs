//! Host name → site: exact names first, then `*.example.com` wildcards,
//! the longest (most specific) wildcard winning.
//!
//! A wildcard matches any depth below its suffix (`a.b.example.com` too),
//! as Apache's `ServerAlias *.example.com` (an fnmatch glob) does.
//! Certificates follow the stricter RFC 6125 rule (one label); that lives in
//! `tls::validate::name_matches`.
//!
//! Names a site takes certificates for on demand (`on_demand` patterns, and
//! the one `on_demand_any` catch-all) are a second tier, looked at only when
//! no listed domain of any site matches: on-demand never takes a name
//! another site lists, exactly or by wildcard.

use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct DomainMap<T> {
    exact: HashMap<String, T>,
    /// (".example.com", value), longest suffix first.
    wildcards: Vec<(String, T)>,
    /// The on-demand tier: patterns, then the catch-all.
    on_demand_exact: HashMap<String, T>,
    on_demand_wildcards: Vec<(String, T)>,
    catch_all: Option<T>,
}

/// Which tier a name was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// A site's `domains`.
    Listed,
    /// A site's `on_demand` patterns or the `on_demand_any` catch-all.
    OnDemand,
}

impl<T> Default for DomainMap<T> {
    fn default() -> Self {
        DomainMap {
            exact: HashMap::new(),
            wildcards: Vec::new(),
            on_demand_exact: HashMap::new(),
            on_demand_wildcards: Vec::new(),
            catch_all: None,
        }
    }
}

impl<T: Clone> DomainMap<T> {
    /// Adds `name` (`example.com` or `*.example.com`, lower case).
    pub fn insert(&mut self, name: &str, value: T) {
        if let Some(suffix) = name.strip_prefix('*') {
            self.wildcards.push((suffix.to_string(), value));
            self.wildcards.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        } else {
            self.exact.insert(name.to_string(), value);
        }
    }

    /// Adds an on-demand pattern (`name.example` or `*.example.com`).
    pub fn insert_on_demand(&mut self, name: &str, value: T) {
        if let Some(suffix) = name.strip_prefix('*') {
            self.on_demand_wildcards.push((suffix.to_string(), value));
            self.on_demand_wildcards
                .sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        } else {
            self.on_demand_exact.insert(name.to_string(), value);
        }
    }

    /// Sets the site that takes any name nothing else matches.
    pub fn set_catch_all(&mut self, value: T) {
        self.catch_all = Some(value);
    }

    /// The value for a host name (any case, no port, an optional trailing
    /// dot as DNS allows), listed domains before on-demand ones.
    pub fn lookup(&self, host: &str) -> Option<&T> {
        self.lookup_tier(host).map(|(v, _)| v)
    }

    /// As [`DomainMap::lookup`], with the tier the name was found in.
    pub fn lookup_tier(&self, host: &str) -> Option<(&T, Tier)> {
        let host = host.strip_suffix('.').unwrap_or(host);
        let lower;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = host.to_ascii_lowercase();
            lower.as_str()
        } else {
            host
        };
        let listed = self
            .exact
            .get(host)
            .or_else(|| by_suffix(&self.wildcards, host));
        if let Some(v) = listed {
            return Some((v, Tier::Listed));
        }
        self.on_demand_exact
            .get(host)
            .or_else(|| by_suffix(&self.on_demand_wildcards, host))
            .or(self.catch_all.as_ref())
            .map(|v| (v, Tier::OnDemand))
    }
}

/// The value of the longest wildcard suffix below which `host` is.
fn by_suffix<'a, T>(wildcards: &'a [(String, T)], host: &str) -> Option<&'a T> {
    wildcards
        .iter()
        .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_before_wildcard_and_longest_wildcard_wins() {
        let mut m = DomainMap::default();
        m.insert("*.example.com", 1);
        m.insert("*.shop.example.com", 2);
        m.insert("www.shop.example.com", 3);
        assert_eq!(m.lookup("a.example.com"), Some(&1));
        assert_eq!(m.lookup("a.b.example.com"), Some(&1));
        assert_eq!(m.lookup("x.shop.example.com"), Some(&2));
        assert_eq!(m.lookup("WWW.Shop.Example.com."), Some(&3));
        assert_eq!(m.lookup("example.com"), None);
        assert_eq!(m.lookup("badexample.com"), None);
        assert_eq!(m.lookup(".example.com"), None);
    }

    #[test]
    fn on_demand_patterns_never_take_a_listed_name() {
        let mut m = DomainMap::default();
        m.insert("www.customer.example", 1);
        m.insert("*.shop.customer.example", 2);
        m.insert_on_demand("*.customer.example", 3);
        m.insert_on_demand("exact.example", 4);
        assert_eq!(
            m.lookup_tier("www.customer.example"),
            Some((&1, Tier::Listed))
        );
        assert_eq!(
            m.lookup_tier("a.shop.customer.example"),
            Some((&2, Tier::Listed))
        );
        assert_eq!(
            m.lookup_tier("new.customer.example"),
            Some((&3, Tier::OnDemand))
        );
        assert_eq!(m.lookup_tier("Exact.Example."), Some((&4, Tier::OnDemand)));
        assert_eq!(m.lookup("other.example"), None);
        m.set_catch_all(5);
        assert_eq!(m.lookup_tier("other.example"), Some((&5, Tier::OnDemand)));
        assert_eq!(
            m.lookup_tier("www.customer.example"),
            Some((&1, Tier::Listed))
        );
    }
}
