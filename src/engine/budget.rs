//! The work budget of one request.
//!
//! Thousands of customers' `.htaccess` files run in one process, inline on
//! the async workers: a request must not be able to take a worker for
//! long, whatever its site's rules say.  Apache loses one thread to a
//! runaway `[N]` loop; htgate would lose a whole worker (and every
//! connection queued on it), so the engine counts its work
//! deterministically and stops a request that exceeds its budget with a
//! 500, logged with the site, the client and the rule that was running.
//!
//! A unit is roughly one byte scanned by a regular expression, so the
//! budget is independent of the machine's speed (the same request is
//! stopped at the same point everywhere, and `htgate explain` can say
//! so).  What is charged:
//!
//! | work | units |
//! | --- | --- |
//! | a regex search (the fast engine) | 16 + subject length |
//! | a regex search (the backtracking engine, bounded by its step limit) | 10,000 + subject length |
//! | a rewrite round (`[N]`) | 64 |
//! | a substitution, header or expression value built | its length |
//! | a wildcard (`<Files>`, `Require`, listing patterns) | pattern × name length |
//! | a sub-request (`-F`, `-U`, a listing entry) | 200 |
//!
//! The meter lives in a thread-local: the engine runs a request start to
//! end on one thread without awaiting, and the counting points (regex
//! searches, wildcards) are deep inside code that has no request at
//! hand.  [`Scope`] installs a request's meter and restores the previous
//! one when dropped, so nested runs (an `explain` inside a test) keep
//! their own counts.

use std::cell::Cell;

/// The default budget (units): generous enough that every recorded
/// conformance case and every real `.htaccess` of the corpus uses a small
/// fraction of it (the largest: about 1 %), small enough that a worker is
/// never held for more than a few milliseconds.
pub const DEFAULT_BUDGET: u64 = 1_000_000;

/// A run on the blocking pool (it holds one of its site's few slots there,
/// not an async worker) may use this many times the budget.
pub const BLOCKING_FACTOR: u64 = 20;

/// Units charged for a search with the backtracking engine: its step limit
/// bounds it, not the subject's length.
pub const BACKTRACKING_SEARCH: u64 = 10_000;
/// Units charged for a search with the linear engine.
pub const LINEAR_SEARCH: u64 = 16;
/// Units charged per `[N]` round (on top of its rules).
pub const ROUND: u64 = 64;
/// Units charged per sub-request (on top of the rules it runs): a listing
/// of 10,000 entries is 10,000 sub-requests.
pub const SUBREQUEST: u64 = 200;

/// What ran out of budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    Regex,
    Rounds,
    Text,
    Wildcard,
    Subrequests,
    ListingEntries,
}

impl Work {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Work::Regex => "regex",
            Work::Rounds => "rounds",
            Work::Text => "text",
            Work::Wildcard => "wildcard",
            Work::Subrequests => "subrequests",
            Work::ListingEntries => "listing-entries",
        }
    }
}

thread_local! {
    /// Units left to the running request; unlimited outside a [`Scope`]
    /// (the compile step, tests, `htgate check`).  Two plain cells, so a
    /// charge (on every regex search) is a load, a compare and a store.
    static LEFT: Cell<u64> = const { Cell::new(u64::MAX) };
    /// What ran out, once something did.
    static SPENT: Cell<Option<Work>> = const { Cell::new(None) };
}

/// Charges `units` of `work`.  `false` once the budget is spent: the
/// caller stops what it is doing; the request ends with a 500 whatever it
/// decided meanwhile (see [`Scope::exhausted`]).
#[inline]
pub fn charge(work: Work, units: u64) -> bool {
    LEFT.with(|left| {
        let l = left.get();
        if l >= units && l > 0 {
            left.set(l - units);
            true
        } else {
            left.set(0);
            SPENT.with(|s| {
                if s.get().is_none() {
                    s.set(Some(work));
                }
            });
            false
        }
    })
}

/// Whether the running request's budget is spent.
#[inline]
pub fn exhausted() -> bool {
    SPENT.with(|s| s.get().is_some())
}

/// The running request's meter, installed for as long as this lives.
pub struct Scope {
    limit: u64,
    previous: (u64, Option<Work>),
}

impl Scope {
    /// Starts counting against `limit` units.
    pub fn enter(limit: u64) -> Scope {
        let previous = (
            LEFT.with(|l| l.replace(limit)),
            SPENT.with(|s| s.replace(None)),
        );
        Scope { limit, previous }
    }

    /// What ran out, if the budget is spent.
    pub fn exhausted(&self) -> Option<Work> {
        SPENT.with(Cell::get)
    }

    /// Units used so far.
    pub fn used(&self) -> u64 {
        self.limit - LEFT.with(Cell::get).min(self.limit)
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let (left, spent) = self.previous;
        LEFT.with(|l| l.set(left));
        SPENT.with(|s| s.set(spent));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_outside_a_scope() {
        assert!(charge(Work::Regex, u64::MAX / 2));
        assert!(!exhausted());
    }

    #[test]
    fn a_scope_counts_and_stops_and_restores() {
        {
            let outer = Scope::enter(100);
            assert!(charge(Work::Regex, 60));
            assert_eq!(outer.used(), 60);
            {
                let inner = Scope::enter(10);
                assert!(!charge(Work::Wildcard, 11));
                assert_eq!(inner.exhausted(), Some(Work::Wildcard));
                // once spent, everything is refused
                assert!(!charge(Work::Regex, 0));
            }
            // the outer request's count is back
            assert_eq!(outer.exhausted(), None);
            assert!(!charge(Work::Rounds, 41));
            assert_eq!(outer.exhausted(), Some(Work::Rounds));
        }
        assert!(!exhausted());
    }
}
