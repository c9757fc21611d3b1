//! Host name → site: exact names first, then `*.example.com` wildcards,
//! the longest (most specific) wildcard winning.
//!
//! A wildcard matches any depth below its suffix (`a.b.example.com` too),
//! as Apache's `ServerAlias *.example.com` (an fnmatch glob) does.
//! Certificates follow the stricter RFC 6125 rule (one label); that lives in
//! `tls::validate::name_matches`.

use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct DomainMap<T> {
    exact: HashMap<String, T>,
    /// (".example.com", value), longest suffix first.
    wildcards: Vec<(String, T)>,
}

impl<T> Default for DomainMap<T> {
    fn default() -> Self {
        DomainMap {
            exact: HashMap::new(),
            wildcards: Vec::new(),
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

    /// The value for a host name (any case, no port, an optional trailing
    /// dot as DNS allows).
    pub fn lookup(&self, host: &str) -> Option<&T> {
        let host = host.strip_suffix('.').unwrap_or(host);
        let lower;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = host.to_ascii_lowercase();
            lower.as_str()
        } else {
            host
        };
        if let Some(v) = self.exact.get(host) {
            return Some(v);
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .map(|(_, v)| v)
    }
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
}
