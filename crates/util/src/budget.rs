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
use std::time::{Duration, Instant};

/// The default budget (units): generous enough that every recorded
/// conformance case and every real `.htaccess` of the corpus uses a small
/// fraction of it (the largest: about 1 %), small enough that a worker is
/// never held for more than a few milliseconds.
pub const DEFAULT_BUDGET: u64 = 1_000_000;

/// A run on the blocking pool (it holds one of its site's few slots there,
/// not an async worker) may use this many times the budget.
pub const BLOCKING_FACTOR: u64 = 20;

/// What a run inline on an async worker may use before it is moved to a
/// blocking thread (at a lower priority) and run again there within the
/// request's whole budget.  A worker is then held for a slice (tens of
/// microseconds), not for the budget: the rules of every real `.htaccess`
/// of the corpus and every conformance case use well under it (the
/// largest about 10,000 units; a 2,000-rule map's last rule about
/// 75,000), so only runaway rule lists pay for the second run.
pub const INLINE_SLICE: u64 = 100_000;

/// The inline run's time slice: units are deterministic but not equally
/// costly everywhere (20,000 regexes searched once each are cold in the
/// CPU's caches), so an inline run is also moved off the worker after
/// this long, checked every [`CHECKPOINT`] units.  Measured: a static
/// WordPress request's rules take about 1 µs; 20,000 unanchored rules
/// about 2.5 ms.
pub const INLINE_TIME: Duration = Duration::from_micros(500);

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

/// How many units the hot counter holds at a time: when it runs out, the
/// slow path refills it from the rest of the budget and, for a run with a
/// time slice, reads the clock.  A charge stays a load, a compare and a
/// store; the clock is read once per this many units.
const CHECKPOINT: u64 = 2_048;

/// What ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    Regex,
    Rounds,
    Text,
    Wildcard,
    Subrequests,
    ListingEntries,
    /// An inline run's time slice (not a refusal: the run moves off the
    /// worker).  Units measure work deterministically, but not its cost
    /// everywhere: 20,000 regexes that are each searched once are cold in
    /// the CPU's caches and cost far more per unit than one searched
    /// 20,000 times.
    Time,
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
            Work::Time => "time-slice",
        }
    }
}

thread_local! {
    /// Units the hot counter holds (at most [`CHECKPOINT`] inside a
    /// [`Scope`]); unlimited outside one (the compile step, tests,
    /// `htgate check`).
    static LEFT: Cell<u64> = const { Cell::new(u64::MAX) };
    /// The rest of the budget, not yet in [`LEFT`].
    static RESERVE: Cell<u64> = const { Cell::new(0) };
    /// When an inline run's time slice ends.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// What ran out, once something did.
    static SPENT: Cell<Option<Work>> = const { Cell::new(None) };
}

/// Charges `units` of `work`.  `false` once the budget is spent: the
/// caller stops what it is doing; the request ends with a 500 whatever it
/// decided meanwhile (see [`Scope::exhausted`]).
#[inline(always)]
pub fn charge(work: Work, units: u64) -> bool {
    LEFT.with(|left| {
        let l = left.get();
        if l >= units && l > 0 {
            left.set(l - units);
            true
        } else {
            refill(work, units)
        }
    })
}

/// The slow path of [`charge`]: the hot counter ran out.
#[cold]
#[inline(never)]
fn refill(work: Work, units: u64) -> bool {
    let total = LEFT.with(Cell::get).saturating_add(RESERVE.with(Cell::get));
    let late = DEADLINE
        .with(Cell::get)
        .is_some_and(|d| Instant::now() >= d);
    if total < units || total == 0 || late {
        LEFT.with(|l| l.set(0));
        RESERVE.with(|r| r.set(0));
        SPENT.with(|s| {
            if s.get().is_none() {
                s.set(Some(if late { Work::Time } else { work }));
            }
        });
        return false;
    }
    let rest = total - units;
    let hot = rest.min(CHECKPOINT);
    LEFT.with(|l| l.set(hot));
    RESERVE.with(|r| r.set(rest - hot));
    true
}

/// Whether the running request's budget is spent.  Asked after every
/// rule: while the hot counter holds units (a spent budget zeroes it) the
/// answer is one load and a compare.
#[inline(always)]
pub fn exhausted() -> bool {
    LEFT.with(Cell::get) == 0 && spent_now()
}

#[cold]
#[inline(never)]
fn spent_now() -> bool {
    SPENT.with(|s| s.get().is_some())
}

/// The running request's meter, installed for as long as this lives.
pub struct Scope {
    limit: u64,
    previous: (u64, u64, Option<Instant>, Option<Work>),
}

impl Scope {
    /// Starts counting against `limit` units.
    pub fn enter(limit: u64) -> Scope {
        Scope::install(limit, None)
    }

    /// Starts counting against `limit` units and a time slice: past
    /// `slice` the run stops as if spent, with [`Work::Time`].
    pub fn enter_sliced(limit: u64, slice: Duration) -> Scope {
        Scope::install(limit, Instant::now().checked_add(slice))
    }

    fn install(limit: u64, deadline: Option<Instant>) -> Scope {
        let hot = limit.min(CHECKPOINT);
        let previous = (
            LEFT.with(|l| l.replace(hot)),
            RESERVE.with(|r| r.replace(limit - hot)),
            DEADLINE.with(|d| d.replace(deadline)),
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
        let left = LEFT.with(Cell::get).saturating_add(RESERVE.with(Cell::get));
        self.limit - left.min(self.limit)
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let (left, reserve, deadline, spent) = self.previous;
        LEFT.with(|l| l.set(left));
        RESERVE.with(|r| r.set(reserve));
        DEADLINE.with(|d| d.set(deadline));
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

    #[test]
    fn counts_across_checkpoints_exactly() {
        let scope = Scope::enter(3 * CHECKPOINT + 10);
        for _ in 0..(3 * CHECKPOINT + 10) {
            assert!(charge(Work::Regex, 1));
        }
        assert_eq!(scope.used(), 3 * CHECKPOINT + 10);
        assert!(!charge(Work::Text, 1));
        assert_eq!(scope.exhausted(), Some(Work::Text));
    }

    #[test]
    fn a_charge_larger_than_a_checkpoint_is_taken_from_the_reserve() {
        let scope = Scope::enter(10 * CHECKPOINT);
        assert!(charge(Work::Regex, 5 * CHECKPOINT));
        assert_eq!(scope.used(), 5 * CHECKPOINT);
        assert!(!charge(Work::Regex, 5 * CHECKPOINT + 1));
        assert_eq!(scope.exhausted(), Some(Work::Regex));
    }

    #[test]
    fn a_time_slice_stops_a_run_that_still_has_units() {
        let scope = Scope::enter_sliced(u64::MAX / 4, Duration::ZERO);
        // the first checkpoint's units are charged without a clock read
        let mut charged = 0;
        while charge(Work::Regex, 1) {
            charged += 1;
            assert!(charged <= CHECKPOINT, "the slice was never checked");
        }
        assert_eq!(scope.exhausted(), Some(Work::Time));
    }
}
