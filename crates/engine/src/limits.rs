//! What one site may use of the shared process (SECURITY.md, "Limits"):
//! its work budget per request, its share of the async workers and of the
//! blocking pool, and where its file tests may look.
//!
//! A site over a limit waits in a short, bounded queue and is then
//! answered 503 with `Retry-After`; every refusal is counted in
//! `/metrics` (`htgate_refusals_total{site,reason}`) and logged at most
//! once per interval, site and reason (`logs::refusal`).

use super::respond::RequestHead;
use super::site::Site;
use super::ConnInfo;
pub use htgate_telemetry::logs::refusal::Reason;
use htgate_util::budget::Work;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Largest request body (Apache's `LimitRequestBody` is 1 GiB since
/// 2.4.54).  A larger `Content-Length`: 413 before any byte is read; a
/// chunked HTTP/1 body that grows past it: the connection is closed.
pub const MAX_BODY_BYTES: u64 = 1 << 30;

/// Requests of one site that may run the engine on the async workers at
/// once (config mode; `engine_max_concurrent`): half the CPUs (at least
/// one), so that one site's flood queues behind its own limit while other
/// sites' requests always find a worker that is not running its rules.
/// Measured (`scripts/isolation_bench.py`, 2 CPUs): with 4, the other
/// site's p99 went from 0.6 ms to 17.8 ms under attack; with 1, to 3.6 ms.
pub fn default_engine_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}
/// Requests of one site that may hold a blocking-pool thread at once
/// (password hashing, listings, cold compiles; `blocking_max_concurrent`).
pub const DEFAULT_BLOCKING_CONCURRENCY: usize = 2;
/// Blocking-pool threads all sites together may hold.
pub(crate) const GLOBAL_BLOCKING_LIMIT: usize = 64;
/// How long a request waits for its site's turn before a 503
/// (`queue_timeout_ms`).
pub const DEFAULT_QUEUE_WAIT: Duration = Duration::from_secs(2);
/// Requests of one site that may wait at once (more: 503 at once).
pub const DEFAULT_QUEUE_LENGTH: usize = 256;
/// Deadline of one piece of blocking work (`blocking_timeout_ms`); a
/// thread stuck past it (a hung network filesystem) keeps its site's
/// slot, so a stuck site cannot take the whole pool.
pub const DEFAULT_BLOCKING_DEADLINE: Duration = Duration::from_secs(10);
/// The `Retry-After` of a 503 for a site over its limits (seconds).
pub const RETRY_AFTER_SECONDS: u64 = 2;

/// A site's limits (each site its own; quick mode has one site).
#[derive(Clone)]
pub struct SiteLimits {
    /// The name in logs and metrics.
    pub name: Arc<String>,
    /// Work units per request (`engine::budget`).
    pub budget: u64,
    /// `Some`: file tests (`-f`, `-d`, `filesize()`…) see only paths
    /// under these folders (the site's root and its extra paths), as if
    /// nothing else existed.  `None`: Apache's behaviour (quick mode).
    pub confine: Option<Arc<[String]>>,
    /// Inline engine runs; `None`: not limited (quick mode).
    pub engine: Option<Arc<Gate>>,
    /// Blocking-pool work.
    pub blocking: Arc<Gate>,
    /// Deadline of one piece of blocking work.
    pub blocking_deadline: Duration,
    /// The engine may run on the async workers (its `stat`s cannot hang);
    /// `false` for a site on a network filesystem (`engine::fs_kind`):
    /// every request runs on the blocking pool.
    pub inline: bool,
    /// When the site's last inline run used its whole slice
    /// ([`LongRuns`]).
    pub long_runs: Arc<LongRuns>,
}

/// Whether a site's rules ran long lately.  A run that uses its inline
/// slice is thrown away and done again off the workers; while a site
/// keeps doing that (a flood of runaway rules), its requests go off the
/// workers at once for a while instead of each wasting a slice of a
/// worker first.  One inline attempt every [`LongRuns::HOLD`] finds out
/// whether the site has calmed down.
#[derive(Default)]
pub struct LongRuns {
    /// Milliseconds since [`epoch`] when the mark ends; 0: none.
    until_ms: AtomicU64,
}

impl LongRuns {
    /// How long a site stays marked after a run used its slice.
    pub(crate) const HOLD: Duration = Duration::from_secs(2);

    /// Marks the site: a run just used its slice.
    pub fn mark(&self) {
        let until = since_epoch_ms().saturating_add(Self::HOLD.as_millis() as u64);
        self.until_ms.store(until, Ordering::Relaxed);
    }

    /// Whether the site is marked (its runs start off the workers).
    pub fn marked(&self) -> bool {
        let until = self.until_ms.load(Ordering::Relaxed);
        until != 0 && since_epoch_ms() < until
    }
}

fn since_epoch_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    // +1: a mark made in the first millisecond is not "none"
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
        + 1
}

impl SiteLimits {
    /// Quick mode's: one site, the default budget, no confinement.
    pub(crate) fn single_site(name: &str) -> SiteLimits {
        SiteLimits {
            name: Arc::new(name.to_string()),
            budget: htgate_util::budget::DEFAULT_BUDGET,
            confine: None,
            engine: None,
            blocking: Arc::new(Gate::new(
                GLOBAL_BLOCKING_LIMIT,
                DEFAULT_QUEUE_LENGTH,
                DEFAULT_QUEUE_WAIT,
            )),
            blocking_deadline: DEFAULT_BLOCKING_DEADLINE,
            inline: true,
            long_runs: Arc::default(),
        }
    }

    /// Whether a file test may look at `path` (always, unconfined).
    pub(crate) fn may_look_at(&self, path: &str) -> bool {
        match &self.confine {
            None => true,
            Some(roots) => {
                // `..` could climb out of a root; such a path is refused.
                !path.split('/').any(|seg| seg == "..")
                    && roots.iter().any(|root| {
                        path == root.as_str()
                            || path
                                .strip_prefix(root.as_str())
                                .is_some_and(|rest| rest.starts_with('/') || root.ends_with('/'))
                    })
            }
        }
    }
}

/// A bounded number of concurrent holders with a bounded queue (the
/// site's share of the workers, of the blocking threads, of PHP).
/// Waiters are served first come, first served (tokio's semaphore is
/// fair).
pub struct Gate {
    slots: Arc<Semaphore>,
    limit: usize,
    waiting: AtomicUsize,
    max_waiting: usize,
    wait: Duration,
}

/// Why a gate was not passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too many requests already wait.
    QueueFull,
    /// The wait was longer than the gate allows.
    Timeout,
}

impl Gate {
    /// `limit` holders at once (at least 1), `max_waiting` waiters (0:
    /// none), each for at most `wait`.
    pub fn new(limit: usize, max_waiting: usize, wait: Duration) -> Gate {
        let limit = limit.max(1);
        Gate {
            slots: Arc::new(Semaphore::new(limit)),
            limit,
            waiting: AtomicUsize::new(0),
            max_waiting,
            wait,
        }
    }

    /// The longest wait.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Holders now.
    pub fn held(&self) -> usize {
        self.limit.saturating_sub(self.slots.available_permits())
    }

    /// A slot, at once if one is free, else after a bounded wait.
    pub async fn enter(&self) -> Result<OwnedSemaphorePermit, Refused> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(p);
        }
        // Given back on drop: also when the waiting request is dropped
        // (its client went away), so the count never drifts.
        let _place = QueuePlace::take(&self.waiting, self.max_waiting).ok_or(Refused::QueueFull)?;
        match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            // the semaphore is never closed; treat it as a timeout
            _ => Err(Refused::Timeout),
        }
    }
}

/// A place in a gate's queue, given back on drop.
struct QueuePlace<'a>(&'a AtomicUsize);

impl<'a> QueuePlace<'a> {
    fn take(queued: &'a AtomicUsize, max: usize) -> Option<QueuePlace<'a>> {
        queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| QueuePlace(queued))
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The scheduling priority of blocking work: `nice` 19, the lowest
/// level (CFS weight 15 against a worker's 1,024).  Such a thread gets
/// the CPU the workers leave, and a worker that wakes takes it back at
/// once.  `nice` 10 was not enough: a woken worker waited for the lowered
/// thread's time slice (about 3 ms), and that became the other sites'
/// tail latency (`benches/RESULTS.md`); `SCHED_IDLE` did as well for the
/// tail but starves blocking work entirely on a busy host, where nice 19
/// still gives it a share.
pub(crate) const BLOCKING_NICE: i32 = 19;

/// Lowers the calling thread to [`BLOCKING_NICE`] (one-way: call it on a
/// thread of the low-priority pool only).  A failure (a platform without
/// it) leaves the thread as it was.
pub(crate) fn lower_this_threads_priority() {
    use thread_priority::{set_current_thread_priority, ThreadPriority};
    // The crate maps 0..=99 onto nice 19..=-20: 0 is nice 19.
    let lowest = ThreadPriority::Crossplatform(0u8.try_into().unwrap_or_default());
    if let Err(e) = set_current_thread_priority(lowest) {
        tracing::debug!("cannot lower a blocking thread to nice {BLOCKING_NICE}: {e:?}");
    }
}

/// The pool that runs blocking work: a runtime used only for its
/// blocking threads, which it keeps for a while between jobs (a thread
/// per job cost more in the kernel than the jobs, and its stack's
/// mappings stalled the workers' page faults) and lowers once, when it
/// starts them.  The global semaphore bounds what runs on it.
pub fn low_priority_pool() -> tokio::runtime::Handle {
    static POOL: std::sync::OnceLock<Option<tokio::runtime::Runtime>> = std::sync::OnceLock::new();
    let built = POOL.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .thread_name("htgate-blocking")
            .max_blocking_threads(GLOBAL_BLOCKING_LIMIT)
            .thread_keep_alive(std::time::Duration::from_secs(30))
            .on_thread_start(lower_this_threads_priority)
            .build()
            .map_err(|e| {
                tracing::error!(
                    "cannot build the blocking pool: {e}; blocking work runs on the server's"
                )
            })
            .ok()
    });
    match built {
        Some(rt) => rt.handle().clone(),
        // Never expected (building a runtime without I/O only allocates);
        // the server's own blocking pool is the next best.
        None => tokio::runtime::Handle::current(),
    }
}

/// The blocking pool's process-wide bound.
pub fn global_blocking() -> &'static Arc<Semaphore> {
    static G: std::sync::OnceLock<Arc<Semaphore>> = std::sync::OnceLock::new();
    G.get_or_init(|| Arc::new(Semaphore::new(GLOBAL_BLOCKING_LIMIT)))
}

/// Counts and logs (rate-limited) a request stopped by its budget.
pub(crate) fn budget_exhausted(
    site: &Site,
    conn: &ConnInfo,
    head: &RequestHead,
    work: Work,
    at: &str,
) {
    let limits = &site.limits;
    htgate_telemetry::logs::refusal::refused(
        &limits.name,
        Reason::Budget,
        conn.remote,
        &format!(
            "{at}: request {} {} stopped: its work budget ({} units) ran out ({}); answered 500",
            head.method,
            head.target,
            limits.budget,
            work.as_str()
        ),
    );
}

/// Counts and logs (rate-limited) a request refused by a site limit.
pub fn refused(site: &Site, conn: &ConnInfo, reason: Reason, why: Refused) {
    let what = match why {
        Refused::QueueFull => "too many requests already wait",
        Refused::Timeout => "no slot within the queue time",
    };
    htgate_telemetry::logs::refusal::refused(
        &site.limits.name,
        reason,
        conn.remote,
        &format!(
            "site over its {} limit ({what}); answered 503",
            reason.label()
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confinement() {
        let mut l = SiteLimits::single_site("t");
        assert!(l.may_look_at("/etc/passwd"));
        l.confine = Some(vec!["/srv/a".to_string(), "/opt/shared/".to_string()].into());
        assert!(l.may_look_at("/srv/a"));
        assert!(l.may_look_at("/srv/a/x/y"));
        assert!(!l.may_look_at("/srv/ab"));
        assert!(!l.may_look_at("/srv/b/x"));
        assert!(!l.may_look_at("/srv/a/../b/x"));
        assert!(l.may_look_at("/opt/shared/lib"));
        assert!(!l.may_look_at("relative"));
    }

    #[tokio::test]
    async fn a_waiter_that_goes_away_gives_its_place_back() {
        let g = Gate::new(1, 1, Duration::from_secs(10));
        let _held = g.enter().await.expect("free");
        // a waiter dropped while it waits (its client went away)...
        let gone = tokio::time::timeout(Duration::from_millis(20), g.enter()).await;
        assert!(gone.is_err());
        // ...leaves its place: the next one may wait (not QueueFull)
        let next = tokio::time::timeout(Duration::from_millis(20), g.enter()).await;
        assert!(
            next.is_err(),
            "it waited (timed out here), it was not refused"
        );
        assert_eq!(g.held(), 1);
    }

    #[test]
    fn the_engine_share_is_half_the_cpus() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(default_engine_concurrency(), (cpus / 2).max(1));
    }

    /// The nice level of the calling thread.
    fn this_threads_nice() -> Option<i32> {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
        let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
        fields.get(16)?.parse().ok()
    }

    #[tokio::test]
    async fn blocking_work_runs_at_nice_19_on_threads_kept_between_jobs() {
        let caller = this_threads_nice();
        let pool = low_priority_pool();
        let first = pool
            .spawn_blocking(|| (this_threads_nice(), std::thread::current().id()))
            .await
            .expect("job");
        assert_eq!(first.0, Some(BLOCKING_NICE));
        assert_eq!(BLOCKING_NICE, 19);
        // the next job finds the thread the first one left idle
        let second = pool
            .spawn_blocking(|| std::thread::current().id())
            .await
            .expect("job");
        assert_eq!(second, first.1);
        // and the caller's thread was not lowered
        assert_eq!(this_threads_nice(), caller);
    }

    #[test]
    fn a_site_marked_for_long_runs_stays_marked_for_a_while() {
        let runs = LongRuns::default();
        assert!(!runs.marked());
        runs.mark();
        assert!(runs.marked());
        runs.until_ms.store(since_epoch_ms() - 1, Ordering::Relaxed);
        assert!(!runs.marked(), "the mark ends");
    }

    #[tokio::test]
    async fn a_gate_queues_then_refuses() {
        let g = Gate::new(1, 1, Duration::from_millis(50));
        let first = g.enter().await.expect("free");
        // one may wait; it times out
        assert_eq!(g.enter().await.err(), Some(Refused::Timeout));
        drop(first);
        assert!(g.enter().await.is_ok());
        let _held = g.enter().await.expect("free again");
        let waiter = async { g.enter().await.err() };
        let second = async {
            tokio::task::yield_now().await;
            g.enter().await.err()
        };
        let (a, b) = tokio::join!(waiter, second);
        assert_eq!(a, Some(Refused::Timeout));
        assert_eq!(b, Some(Refused::QueueFull));
    }
}
