//! Requests htgate refuses to protect other tenants (a spent work budget,
//! a site over its share of the workers or of the blocking pool, a body
//! below the minimum rate, a site over its PHP limit, a saturated PHP
//! pool, a listing cut at its cap): each is
//! counted in `/metrics` (`htgate_refusals_total{site,reason}`) and logged
//! with the client's address and the site, but at most one line per site
//! and reason every `LOG_EVERY`, so that an attack cannot flood the error
//! log; the next line says how many were left out.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// At most one log line per site and reason this often.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a request was refused; the `reason` label in `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// 408: the body came slower than the minimum rate.
    SlowBody,
    /// 503: the site's PHP limit and queue were full, or the wait in the
    /// queue ran out.
    PhpLimit,
    /// 503: the PHP-FPM pool could not be reached or said it was
    /// overloaded (every worker busy and its listen queue full, or down).
    PhpPool,
    /// 500: the request's work budget ran out (`engine::budget`).
    Budget,
    /// 503: the site's share of the async workers was taken.
    EngineLimit,
    /// 503: the site's share of the blocking pool was taken.
    BlockingLimit,
    /// 503: blocking work passed its deadline.
    BlockingDeadline,
    /// A directory listing cut at its entry cap (still answered).
    ListingEntries,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::SlowBody => "slow_body",
            Reason::PhpLimit => "php_limit",
            Reason::PhpPool => "php_pool",
            Reason::Budget => "budget",
            Reason::EngineLimit => "engine_limit",
            Reason::BlockingLimit => "blocking_limit",
            Reason::BlockingDeadline => "blocking_deadline",
            Reason::ListingEntries => "listing_entries",
        }
    }
}

/// When the last line of one site and reason was written, and how many
/// were left out since.
struct Window {
    logged_at: Instant,
    suppressed: u64,
}

/// The rate limit of the log lines (one per key per `every`).
pub(crate) struct Throttle {
    every: Duration,
    windows: HashMap<(Arc<String>, Reason), Window>,
}

impl Throttle {
    pub(crate) fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            windows: HashMap::new(),
        }
    }

    /// `Some(n)`: log this one, saying that `n` were left out before it;
    /// `None`: leave it out. The map holds one entry per site and reason
    /// (sites come from the configuration, not from clients), so it is
    /// bounded.
    pub(crate) fn admit(
        &mut self,
        site: &Arc<String>,
        reason: Reason,
        now: Instant,
    ) -> Option<u64> {
        match self.windows.get_mut(&(site.clone(), reason)) {
            Some(w) if now.duration_since(w.logged_at) < self.every => {
                w.suppressed += 1;
                None
            }
            Some(w) => {
                w.logged_at = now;
                Some(std::mem::take(&mut w.suppressed))
            }
            None => {
                self.windows.insert(
                    (site.clone(), reason),
                    Window {
                        logged_at: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

fn throttle() -> &'static Mutex<Throttle> {
    static THROTTLE: OnceLock<Mutex<Throttle>> = OnceLock::new();
    THROTTLE.get_or_init(|| Mutex::new(Throttle::new(LOG_EVERY)))
}

/// Count one refusal and log it (rate-limited). `detail` says what
/// happened, for the log line.
pub fn refused(site: &Arc<String>, reason: Reason, client: SocketAddr, detail: &str) {
    crate::metrics::refusal(site, reason.label());
    let admitted = throttle()
        .lock()
        // Nothing panics while holding the lock; a poisoned map is still a map.
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .admit(site, reason, Instant::now());
    if let Some(suppressed) = admitted {
        let more = if suppressed > 0 {
            format!(" ({suppressed} more like it suppressed in the last {LOG_EVERY:?})")
        } else {
            String::new()
        };
        tracing::warn!(
            target: "refusal",
            site = %site,
            client = %client,
            reason = reason.label(),
            "refused: {detail}{more}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_site_and_reason_per_window_then_the_count() {
        assert_eq!(LOG_EVERY, Duration::from_secs(10), "as documented");
        let mut t = Throttle::new(LOG_EVERY);
        let a = Arc::new("a".to_string());
        let b = Arc::new("b".to_string());
        let start = Instant::now();
        assert_eq!(t.admit(&a, Reason::SlowBody, start), Some(0));
        for i in 1..=500 {
            let at = start + Duration::from_millis(i);
            assert_eq!(t.admit(&a, Reason::SlowBody, at), None);
        }
        // other sites and reasons have their own window
        assert_eq!(t.admit(&b, Reason::SlowBody, start), Some(0));
        assert_eq!(t.admit(&a, Reason::PhpLimit, start), Some(0));
        let later = start + Duration::from_secs(10);
        assert_eq!(t.admit(&a, Reason::SlowBody, later), Some(500));
        assert_eq!(t.admit(&a, Reason::SlowBody, later), None);
        assert_eq!(t.windows.len(), 3);
    }
}
