//! When to act: renewal time, back-off after failures, and which names
//! HTTP-01 can prove at all.

use std::net::IpAddr;
use std::time::Duration;

/// Back-off never grows beyond a day: a CA outage or a DNS mistake fixed
/// later must still heal within a day.
pub(super) const BACKOFF_CAP: Duration = Duration::from_secs(24 * 60 * 60);

/// Wait after the `failures`-th consecutive failure: `base`, `2 base`,
/// `4 base`… capped at 24 h. Zero failures means no wait.
pub(crate) fn backoff_delay(base: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
    base.checked_mul(factor)
        .unwrap_or(BACKOFF_CAP)
        .min(BACKOFF_CAP)
}

/// Why `domain` is never ordered over HTTP-01, or `None` when it can be.
pub(crate) fn skip_reason(domain: &str) -> Option<&'static str> {
    if domain.starts_with("*.") {
        return Some("wildcard names need a DNS-01 challenge; HTTP-01 cannot prove them");
    }
    let bare = domain.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() {
        return Some("IP addresses are not validated over HTTP-01 by htgate");
    }
    if !is_dns_name(domain) {
        return Some("not a valid DNS name");
    }
    None
}

/// Letters, digits and hyphens in dot-separated labels of 1..=63 bytes.
/// Also keeps the name safe as a folder name under `certificates/`.
fn is_dns_name(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The form names are stored and compared in: lowercase, no trailing dot.
pub(crate) fn normalize(domain: &str) -> String {
    domain.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// When a certificate valid from `not_before` to `not_after` is due for
/// renewal: `renew_before` ahead of expiry, or when a third of its lifetime
/// is left (Let's Encrypt's own advice, and it scales to 45-day certificates).
pub(crate) fn renewal_due(not_before: i64, not_after: i64, renew_before: Option<Duration>) -> i64 {
    let ahead = match renew_before {
        Some(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        None => (not_after - not_before).max(0) / 3,
    };
    not_after.saturating_sub(ahead)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 60 * 60;

    #[test]
    fn backoff_doubles_from_the_base_and_caps_at_a_day() {
        let base = Duration::from_secs(60);
        let seq: Vec<u64> = (0..6).map(|n| backoff_delay(base, n).as_secs()).collect();
        assert_eq!(seq, vec![0, 60, 120, 240, 480, 960]);
        assert_eq!(backoff_delay(base, 11), Duration::from_secs(61_440));
        assert_eq!(backoff_delay(base, 12), BACKOFF_CAP);
        assert_eq!(backoff_delay(base, 40), BACKOFF_CAP);
        assert_eq!(backoff_delay(base, u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn renewal_at_a_third_of_the_lifetime_or_renew_before() {
        let start = 1_700_000_000;
        // 90 days: due with 30 days left.
        assert_eq!(renewal_due(start, start + 90 * DAY, None), start + 60 * DAY);
        // 45 days: due with 15 days left.
        assert_eq!(renewal_due(start, start + 45 * DAY, None), start + 30 * DAY);
        // Explicit: 10 days ahead of expiry whatever the lifetime.
        let ten_days = Some(Duration::from_secs(10 * DAY as u64));
        assert_eq!(
            renewal_due(start, start + 90 * DAY, ten_days),
            start + 80 * DAY
        );
    }

    #[test]
    fn wildcards_ips_and_junk_are_skipped() {
        assert!(skip_reason("*.example.com").is_some_and(|r| r.contains("wildcard")));
        assert!(skip_reason("192.0.2.1").is_some_and(|r| r.contains("IP")));
        assert!(skip_reason("2001:db8::1").is_some_and(|r| r.contains("IP")));
        assert!(skip_reason("[2001:db8::1]").is_some_and(|r| r.contains("IP")));
        for junk in [
            "",
            "a..b",
            "../etc",
            "a/b",
            "-a.com",
            "a b.com",
            "exa_mple.com",
        ] {
            assert!(skip_reason(junk).is_some(), "{junk:?} should be skipped");
        }
        for good in [
            "example.com",
            "www.example.com",
            "site1.test",
            "xn--bcher-kva.example",
        ] {
            assert_eq!(skip_reason(good), None, "{good}");
        }
        assert_eq!(normalize(" WWW.Example.COM. "), "www.example.com");
    }
}
