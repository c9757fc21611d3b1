//! Host name matching (RFC 6125, wildcards) and which site domains a
//! certificate does not cover.

use super::CertInfo;

/// RFC 6125 matching of a certificate name against a host name,
/// case-insensitive.  A wildcard is only allowed as the whole leftmost label
/// and stands for exactly one label: "*.example.com" matches
/// "www.example.com" but neither "example.com" nor "a.b.example.com".
pub(crate) fn name_matches(cert_name: &str, host: &str) -> bool {
    // A trailing dot is the same host (absolute form).
    let cert_name = cert_name.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if cert_name.is_empty() || host.is_empty() || host.contains('*') {
        return false;
    }
    match cert_name.strip_prefix("*.") {
        Some(base) => {
            // "*.com" would cover a whole top-level domain: never valid.
            if base.contains('*') || !base.contains('.') {
                return false;
            }
            match host.split_once('.') {
                Some((label, rest)) => !label.is_empty() && rest == base,
                None => false,
            }
        }
        // Partial-label wildcards ("w*.example.com") are not honoured by
        // browsers, so they match nothing.
        None => !cert_name.contains('*') && cert_name == host,
    }
}

/// Which of `domains` the leaf does not cover.  A site domain may itself be
/// a wildcard ("*.example.com"); only the identical wildcard name covers it.
pub(crate) fn uncovered(leaf: &CertInfo, domains: &[String]) -> Vec<String> {
    domains
        .iter()
        .filter(|domain| !covers(leaf, domain))
        .cloned()
        .collect()
}

fn covers(leaf: &CertInfo, domain: &str) -> bool {
    if domain.starts_with("*.") {
        let wanted = domain.trim_end_matches('.').to_ascii_lowercase();
        leaf.dns_names
            .iter()
            .any(|n| n.trim_end_matches('.') == wanted)
    } else {
        leaf.dns_names.iter().any(|n| name_matches(n, domain))
    }
}
