//! Certificates on demand: a name a site allows beyond its `domains`
//! (`on_demand` patterns, `on_demand_any`) gets its own certificate after
//! its first handshake.
//!
//! The handshake itself (the rustls resolver: synchronous, on an async
//! worker) only hands the name to [`OnDemand::request`], which looks it up
//! in a small map and `try_send`s it to a bounded queue: it never waits and
//! never does I/O; the shared certificate answers that handshake.  One
//! worker task takes the names, the sites in turn: the order limits (all
//! sites, and per site, per window), then (with `public_addresses`) the
//! name's DNS, then the `ask` URL (200 allows), then an order
//! through [`AcmeManager::obtain`] (HTTP-01; in a cluster under the
//! one-order-per-name lock), stored as any automatic certificate is and
//! so renewed and kept across restarts.  A refused name is remembered, so
//! it is neither asked about again nor logged again for a while; the log
//! lines of refusals are also capped per site, so a flood of random names
//! is counted, not written out name by name.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::AcmeManager;
use crate::config::{AskUrl, OnDemandConfig};

/// Refused names remembered at once (a few dozen bytes each): past it the
/// oldest refusal is forgotten first, so a flood of random names costs
/// bounded memory (a forgotten name may be asked about again).
pub(crate) const DENY_CACHE_MAX: usize = 10_000;

/// How much of the `ask` URL's answer is read: its status line is all
/// that counts, so a huge or endless body costs nothing.
const ASK_ANSWER_MAX: usize = 1024;

/// An `ask` URL that did not answer is tried again for that name after
/// this (or `deny_cache_seconds` if shorter): an outage of the service
/// must not refuse its names for the whole deny time.
const ASK_ERROR_RETRY: Duration = Duration::from_secs(60);

/// "The queue is full" is logged at most this often (it is counted every
/// time).
const QUEUE_FULL_LOG_EVERY_S: i64 = 60;

/// Refusals are logged once per name, and at most one line per site and
/// outcome this often: a flood of random names does not flood the log
/// (the next line says how many were not logged; all are counted).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// `[acme.on_demand]`, checked.
#[derive(Debug, Clone)]
pub struct OnDemandSettings {
    pub ask: AskUrl,
    pub ask_timeout: Duration,
    pub max_orders: u32,
    pub max_orders_per_site: u32,
    pub window: Duration,
    pub deny_for: Duration,
    pub max_pending: usize,
    pub max_pending_per_site: usize,
    /// Empty: no DNS check.
    pub public_addresses: Vec<std::net::IpAddr>,
}

impl OnDemandSettings {
    pub fn from_config(c: &OnDemandConfig) -> Result<OnDemandSettings, String> {
        Ok(OnDemandSettings {
            ask: AskUrl::parse(c.ask.get_ref())?,
            ask_timeout: Duration::from_millis(c.ask_timeout_ms.max(1)),
            max_orders: c.max_orders.max(1),
            max_orders_per_site: c.max_orders_per_site.max(1),
            window: Duration::from_secs(c.rate_window_seconds.max(1)),
            deny_for: Duration::from_secs(c.deny_cache_seconds.max(1)),
            max_pending: c.max_pending.max(1),
            max_pending_per_site: c.max_pending_per_site.clamp(1, c.max_pending.max(1)),
            public_addresses: c
                .public_addresses
                .iter()
                .map(|a| {
                    a.get_ref().parse().map_err(|_| {
                        format!("public_addresses: `{}` is not an IP address", a.get_ref())
                    })
                })
                .collect::<Result<_, _>>()?,
        })
    }
}

/// What this process did with on-demand names (the tests read it; the
/// Prometheus counter `htgate_on_demand_requests_total` is the same by
/// outcome, for the whole process).
#[derive(Debug, Default)]
pub struct Stats {
    pub queued: AtomicU64,
    pub handled: AtomicU64,
    pub asked: AtomicU64,
    pub orders: AtomicU64,
    pub issued: AtomicU64,
    pub denied_by_ask: AtomicU64,
    pub ask_failed: AtomicU64,
    pub rate_limited: AtomicU64,
    pub queue_full: AtomicU64,
    pub invalid: AtomicU64,
    pub order_failed: AtomicU64,
    pub dns_elsewhere: AtomicU64,
}

impl Stats {
    fn count(&self, outcome: &'static str) {
        let counter = match outcome {
            "issued" => &self.issued,
            "denied_by_ask" => &self.denied_by_ask,
            "ask_failed" => &self.ask_failed,
            "rate_limited" => &self.rate_limited,
            "queue_full" => &self.queue_full,
            "invalid" => &self.invalid,
            "dns_elsewhere" => &self.dns_elsewhere,
            _ => &self.order_failed,
        };
        counter.fetch_add(1, Relaxed);
        htgate_telemetry::metrics::on_demand(outcome);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}

/// Where a name stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Waiting in the queue, or being asked about.
    Queued,
    /// Allowed, and its order runs.
    Ordering,
    /// Not looked at again before `until`.
    Refused { until: Instant },
}

#[derive(Default)]
struct Names {
    entries: HashMap<String, Entry>,
    /// Refusals in the order they were made, to forget them.
    refusals: VecDeque<(Instant, String)>,
    /// Names `Queued`, in all and per site (`max_pending`,
    /// `max_pending_per_site`).
    queued: usize,
    queued_by_site: HashMap<String, usize>,
}

impl Names {
    /// Forgets refusals that ran out, and the oldest beyond the cap.
    fn expire(&mut self, now: Instant) {
        while let Some((until, name)) = self.refusals.front() {
            if *until > now && self.refusals.len() <= DENY_CACHE_MAX {
                break;
            }
            if let Some(Entry::Refused { until: u }) = self.entries.get(name) {
                if *u == *until {
                    self.entries.remove(name);
                }
            }
            self.refusals.pop_front();
        }
    }

    fn refuse(&mut self, name: &str, until: Instant) {
        self.entries
            .insert(name.to_string(), Entry::Refused { until });
        self.refusals.push_back((until, name.to_string()));
        self.expire(Instant::now());
    }

    /// A `Queued` name leaves the queue.
    fn dequeue(&mut self, site: &str) {
        self.queued = self.queued.saturating_sub(1);
        if let Some(n) = self.queued_by_site.get_mut(site) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.queued_by_site.remove(site);
            }
        }
    }
}

/// When a kind of refusal was last logged, and how many were not since.
type LogSlot = (Option<Instant>, u64);

struct Job {
    name: String,
    site: String,
}

/// What became of a name the worker looked at.
enum Next {
    /// Its order runs.
    Ordering,
    /// Refused until then.
    Refused(Instant),
}

/// Told the name of each certificate issued on demand (to serve it from
/// the next handshake on, and renew it).
pub(crate) type OnIssued = Arc<dyn Fn(&str) + Send + Sync>;

/// The queue, the names' state and the worker of certificates on demand.
pub struct OnDemand {
    settings: OnDemandSettings,
    tx: mpsc::Sender<Job>,
    rx: Mutex<Option<mpsc::Receiver<Job>>>,
    names: Mutex<Names>,
    last_full_log: AtomicI64,
    /// Per (site, outcome): when a refusal was last logged, and how many
    /// were not since.
    refusal_logs: Mutex<HashMap<(String, &'static str), LogSlot>>,
    stats: Stats,
}

impl OnDemand {
    pub fn new(settings: OnDemandSettings) -> Arc<OnDemand> {
        let (tx, rx) = mpsc::channel(settings.max_pending);
        Arc::new(OnDemand {
            settings,
            tx,
            rx: Mutex::new(Some(rx)),
            names: Mutex::new(Names::default()),
            last_full_log: AtomicI64::new(0),
            refusal_logs: Mutex::new(HashMap::new()),
            stats: Stats::default(),
        })
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn settings(&self) -> &OnDemandSettings {
        &self.settings
    }

    fn names(&self) -> MutexGuard<'_, Names> {
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From the handshake: `name` (lower case, no trailing dot) of `site`
    /// has no certificate.  Never blocks: a name already queued, ordered
    /// or refused is left alone, and a full queue (for all sites, or for
    /// this site) drops the name, counted; a later handshake brings it
    /// again.
    pub fn request(&self, name: &str, site: &str) {
        if crate::config::check_domain(name).is_err()
            || name.starts_with("*.")
            || name.parse::<std::net::Ipv4Addr>().is_ok()
        {
            self.stats.count("invalid");
            return;
        }
        let now = Instant::now();
        let mut names = self.names();
        names.expire(now);
        match names.entries.get(name) {
            Some(Entry::Queued | Entry::Ordering) => return,
            Some(Entry::Refused { until }) if *until > now => return,
            _ => {}
        }
        let site_queued = names.queued_by_site.get(site).copied().unwrap_or(0);
        let full = if names.queued >= self.settings.max_pending {
            Some("max_pending")
        } else if site_queued >= self.settings.max_pending_per_site {
            Some("max_pending_per_site")
        } else {
            None
        };
        let job = Job {
            name: name.to_string(),
            site: site.to_string(),
        };
        let sent = match full {
            Some(limit) => Err(limit),
            None => self.tx.try_send(job).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => "max_pending",
                // Shutting down: nothing waits for the name any more.
                mpsc::error::TrySendError::Closed(_) => "",
            }),
        };
        match sent {
            Ok(()) => {
                names.entries.insert(name.to_string(), Entry::Queued);
                names.queued += 1;
                *names.queued_by_site.entry(site.to_string()).or_default() += 1;
                self.stats.queued.fetch_add(1, Relaxed);
            }
            Err("") => {}
            Err(limit) => {
                drop(names);
                self.queue_full(name, site, limit);
            }
        }
    }

    /// Counts a dropped name; says so at most once a minute.
    fn queue_full(&self, name: &str, site: &str, limit: &str) {
        self.stats.count("queue_full");
        let t = htgate_util::unix_now();
        let last = self.last_full_log.load(Relaxed);
        if t - last >= QUEUE_FULL_LOG_EVERY_S
            && self
                .last_full_log
                .compare_exchange(last, t, Relaxed, Relaxed)
                .is_ok()
        {
            tracing::warn!(
                domain = name,
                site,
                limit,
                max_pending = self.settings.max_pending,
                max_pending_per_site = self.settings.max_pending_per_site,
                "certificates on demand: too many names wait ({limit}); new names are dropped until the queue drains (counted in htgate_on_demand_requests_total{{outcome=\"queue_full\"}}; logged once a minute)"
            );
        }
    }

    /// Starts the worker (once; `None` after the first call).  It takes
    /// the sites in turn, one name each, so a site with many new names
    /// does not hold up another's.
    pub(crate) fn spawn(
        self: &Arc<Self>,
        manager: Arc<AcmeManager>,
        on_issued: OnIssued,
    ) -> Option<JoinHandle<()>> {
        let mut rx = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        let me = Arc::clone(self);
        Some(tokio::spawn(async move {
            let mut windows = Windows::default();
            let mut turns = Turns::default();
            loop {
                while let Ok(job) = rx.try_recv() {
                    turns.push(job);
                }
                let job = match turns.next() {
                    Some(job) => job,
                    None => match rx.recv().await {
                        Some(job) => job,
                        None => return,
                    },
                };
                let next = me.handle(&job, &mut windows, &manager, &on_issued).await;
                let mut names = me.names();
                names.dequeue(&job.site);
                match next {
                    // `handle` marked it before the order started (the
                    // order may end, and say so, before this runs).
                    Next::Ordering => {}
                    Next::Refused(until) => names.refuse(&job.name, until),
                }
                drop(names);
                me.stats.handled.fetch_add(1, Relaxed);
            }
        }))
    }

    /// One name: limits, `ask`, then the order (in a task of its own, so
    /// a slow order does not hold up the names behind it).
    async fn handle(
        self: &Arc<Self>,
        job: &Job,
        windows: &mut Windows,
        manager: &Arc<AcmeManager>,
        on_issued: &OnIssued,
    ) -> Next {
        let Job { name, site } = job;
        // A certificate may be stored already (another node ordered it,
        // or it expired and the renewal loop is at it): serve it, keep it
        // renewed, order nothing; the name rests for the deny time so an
        // expired one does not come back at every handshake.
        let (m, n) = (manager.clone(), name.clone());
        let stored = tokio::task::spawn_blocking(move || m.stored(&n).is_some())
            .await
            .unwrap_or(false);
        if stored {
            let (hook, n) = (on_issued.clone(), name.clone());
            let _ = tokio::task::spawn_blocking(move || hook(&n)).await;
            tracing::info!(domain = %name, site = %site, "certificate on demand: one is stored already, serving it");
            return Next::Refused(Instant::now() + self.settings.deny_for);
        }
        let now = Instant::now();
        if let Some(free_at) = windows.full_until(site, now, &self.settings) {
            let why = format!(
                "over the on-demand order limit (max_orders = {} for all sites, max_orders_per_site = {}, per {} s)",
                self.settings.max_orders,
                self.settings.max_orders_per_site,
                self.settings.window.as_secs()
            );
            let until = free_at.max(now);
            self.refused(name, site, "rate_limited", until, &why);
            return Next::Refused(until);
        }
        if !self.settings.public_addresses.is_empty() {
            let here = &self.settings.public_addresses;
            if let Err(why) = points_here(name, here, self.settings.ask_timeout).await {
                let until = Instant::now() + self.settings.deny_for;
                self.refused(name, site, "dns_elsewhere", until, &why);
                return Next::Refused(until);
            }
        }
        self.stats.asked.fetch_add(1, Relaxed);
        match ask(&self.settings, name).await {
            Ok(200) => {}
            Ok(status) => {
                let why = format!("the ask URL answered {status} (200 allows)");
                let until = Instant::now() + self.settings.deny_for;
                self.refused(name, site, "denied_by_ask", until, &why);
                return Next::Refused(until);
            }
            Err(e) => {
                let until = Instant::now() + self.settings.deny_for.min(ASK_ERROR_RETRY);
                self.refused(
                    name,
                    site,
                    "ask_failed",
                    until,
                    &format!("the ask URL: {e}"),
                );
                return Next::Refused(until);
            }
        }
        windows.record(site, Instant::now());
        self.stats.orders.fetch_add(1, Relaxed);
        tracing::info!(domain = %name, site = %site, "certificate on demand: the ask URL allows it, ordering");
        self.names().entries.insert(name.clone(), Entry::Ordering);
        let (me, manager, on_issued) = (Arc::clone(self), manager.clone(), on_issued.clone());
        let (name, site) = (name.clone(), site.clone());
        tokio::spawn(async move {
            match manager.obtain(&name).await {
                Ok(_) => me.issued(&name, &on_issued).await,
                // `obtain` logged the CA's words; the name waits for the
                // deny time before it may be ordered again.
                Err(e) => {
                    let until = Instant::now() + me.settings.deny_for;
                    me.refused(&name, &site, "order_failed", until, &e.to_string());
                    me.names().refuse(&name, until);
                }
            }
        });
        Next::Ordering
    }

    async fn issued(&self, name: &str, on_issued: &OnIssued) {
        let (hook, n) = (on_issued.clone(), name.to_string());
        // Reads the stored files into the certificate store.
        let _ = tokio::task::spawn_blocking(move || hook(&n)).await;
        self.names().entries.remove(name);
        self.stats.count("issued");
    }

    /// Counts and logs a refusal (once per refusal: the name is not looked
    /// at again before `until`).
    fn refused(&self, name: &str, site: &str, outcome: &'static str, until: Instant, why: &str) {
        let now = Instant::now();
        let retry_in_s = until.saturating_duration_since(now).as_secs();
        self.stats.count(outcome);
        let not_logged = {
            let mut logs = self.refusal_logs.lock().unwrap_or_else(|p| p.into_inner());
            // Bounded by sites x outcomes; a site removed by a reload
            // leaves one small entry until the restart.
            let slot = logs.entry((site.to_string(), outcome)).or_insert((None, 0));
            if slot
                .0
                .is_some_and(|t| now.duration_since(t) < REFUSAL_LOG_EVERY)
            {
                slot.1 += 1;
                return;
            }
            let not_logged = slot.1;
            *slot = (Some(now), 0);
            not_logged
        };
        tracing::warn!(
            domain = name,
            site,
            outcome,
            retry_in_s,
            not_logged,
            "no certificate on demand: {why}; the shared certificate answers this name meanwhile{}",
            if not_logged > 0 {
                format!(" ({not_logged} more names of this site refused so since the last such line, not logged)")
            } else {
                String::new()
            }
        );
    }

    /// Whether `name` is refused now (tests).
    #[cfg(test)]
    pub(crate) fn is_refused(&self, name: &str) -> bool {
        matches!(self.names().entries.get(name), Some(Entry::Refused { until }) if *until > Instant::now())
    }
}

/// The names waiting, per site, and the order the sites take turns in.
#[derive(Default)]
struct Turns {
    queues: HashMap<String, VecDeque<String>>,
    /// Sites with names waiting, the next one first.
    order: VecDeque<String>,
}

impl Turns {
    fn push(&mut self, job: Job) {
        let queue = self.queues.entry(job.site.clone()).or_default();
        if queue.is_empty() {
            self.order.push_back(job.site);
        }
        queue.push_back(job.name);
    }

    /// The next site's next name; that site goes to the back of the line.
    fn next(&mut self) -> Option<Job> {
        let site = self.order.pop_front()?;
        let queue = self.queues.get_mut(&site)?;
        let name = queue.pop_front()?;
        if queue.is_empty() {
            self.queues.remove(&site);
        } else {
            self.order.push_back(site.clone());
        }
        Some(Job { name, site })
    }
}

/// Orders made in the last window: all sites', and each site's.
#[derive(Default)]
struct Windows {
    all: VecDeque<Instant>,
    sites: HashMap<String, VecDeque<Instant>>,
}

impl Windows {
    /// `None` when another order fits now; else when one will.
    fn full_until(&mut self, site: &str, now: Instant, s: &OnDemandSettings) -> Option<Instant> {
        let prune = |q: &mut VecDeque<Instant>| {
            while q
                .front()
                .is_some_and(|t| now.duration_since(*t) >= s.window)
            {
                q.pop_front();
            }
        };
        prune(&mut self.all);
        self.sites.retain(|_, q| {
            prune(q);
            !q.is_empty()
        });
        let free_at = |q: &VecDeque<Instant>| q.front().map(|t| *t + s.window);
        if self.all.len() >= s.max_orders as usize {
            return free_at(&self.all);
        }
        match self.sites.get(site) {
            Some(q) if q.len() >= s.max_orders_per_site as usize => free_at(q),
            _ => None,
        }
    }

    fn record(&mut self, site: &str, now: Instant) {
        self.all.push_back(now);
        self.sites
            .entry(site.to_string())
            .or_default()
            .push_back(now);
    }
}

/// `GET <ask>?domain=<name>`: the answer's status, within the timeout.
async fn ask(s: &OnDemandSettings, name: &str) -> Result<u16, String> {
    let url = &s.ask;
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|e| format!("cannot connect to {}:{}: {e}", url.host, url.port))?;
        let host = if url.host.contains(':') {
            format!("[{}]:{}", url.host, url.port)
        } else {
            format!("{}:{}", url.host, url.port)
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: htgate-on-demand\r\nConnection: close\r\n\r\n",
            url.target(name)
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("cannot send the request: {e}"))?;
        let mut head = Vec::with_capacity(128);
        let mut chunk = [0u8; 256];
        while !head.windows(2).any(|w| w == b"\r\n") && head.len() < ASK_ANSWER_MAX {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("cannot read the answer: {e}"))?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
        status_of(&head).ok_or_else(|| "the answer is not HTTP".to_string())
    };
    match tokio::time::timeout(s.ask_timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no answer within {} ms (ask_timeout_ms)",
            s.ask_timeout.as_millis()
        )),
    }
}

/// `Ok` when `name`'s DNS gives one of `here`.  The lookup (the system's
/// resolver, on the blocking pool: never on an async worker) is waited
/// for at most `within`.
async fn points_here(
    name: &str,
    here: &[std::net::IpAddr],
    within: Duration,
) -> Result<(), String> {
    match tokio::time::timeout(within, tokio::net::lookup_host((name, 0))).await {
        Err(_) => Err(format!(
            "its DNS did not answer within {} ms (ask_timeout_ms)",
            within.as_millis()
        )),
        Ok(Err(e)) => Err(format!("its DNS has no address: {e}")),
        Ok(Ok(found)) => {
            let found: Vec<std::net::IpAddr> = found.map(|a| a.ip()).collect();
            if found.iter().any(|a| here.contains(a)) {
                Ok(())
            } else {
                Err(format!(
                    "its DNS points elsewhere ({found:?}, not one of public_addresses)"
                ))
            }
        }
    }
}

/// The status code of an HTTP/1.x status line.
fn status_of(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\r').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_orders: u32, per_site: u32) -> OnDemandSettings {
        OnDemandSettings {
            ask: AskUrl::parse("http://127.0.0.1:1/ask").expect("url"),
            ask_timeout: Duration::from_millis(500),
            max_orders,
            max_orders_per_site: per_site,
            window: Duration::from_secs(60),
            deny_for: Duration::from_secs(60),
            max_pending: 3,
            max_pending_per_site: 3,
            public_addresses: Vec::new(),
        }
    }

    /// SECURITY.md's limits table and the README give these numbers.
    #[test]
    fn the_documents_name_the_limits() {
        let security = include_str!("../../../../SECURITY.md");
        assert!(security.contains("10,000 names, the oldest forgotten first"));
        assert!(security.contains("60 s at most after the `ask` URL failed"));
        assert_eq!(DENY_CACHE_MAX, 10_000);
        assert_eq!(ASK_ERROR_RETRY, Duration::from_secs(60));
        assert!(security.contains("only its status line is read (1 KiB at most)"));
        assert_eq!(ASK_ANSWER_MAX, 1024);
        let readme = include_str!("../../../../README.md");
        for key in [
            "ask_timeout_ms = 5000",
            "max_orders = 60",
            "max_orders_per_site = 10",
            "rate_window_seconds = 3600",
            "deny_cache_seconds = 3600",
            "max_pending = 100",
            "max_pending_per_site = 20",
        ] {
            assert!(readme.contains(key), "README: {key}");
        }
    }

    #[test]
    fn refusal_lines_are_capped_per_site_and_outcome() {
        let od = OnDemand::new(settings(10, 10));
        let until = Instant::now() + Duration::from_secs(60);
        for i in 0..5 {
            od.refused(&format!("n{i}.example"), "a", "rate_limited", until, "why");
        }
        od.refused("m.example", "b", "rate_limited", until, "why");
        od.refused("o.example", "a", "denied_by_ask", until, "why");
        let logs = od.refusal_logs.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(
            logs.get(&("a".to_string(), "rate_limited")).map(|s| s.1),
            Some(4)
        );
        assert_eq!(
            logs.get(&("b".to_string(), "rate_limited")).map(|s| s.1),
            Some(0)
        );
        assert_eq!(
            logs.get(&("a".to_string(), "denied_by_ask")).map(|s| s.1),
            Some(0)
        );
        assert_eq!(Stats::get(&od.stats().rate_limited), 6, "all counted");
    }

    #[test]
    fn status_lines_are_read_and_anything_else_is_not() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_of(b"HTTP/1.0 403 Forbidden\r\nx"), Some(403));
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.1 2000 OK\r\n"), None);
        assert_eq!(status_of(b""), None);
    }

    #[test]
    fn the_order_limits_hold_per_site_and_for_all() {
        let s = settings(3, 2);
        let mut w = Windows::default();
        let t0 = Instant::now();
        assert!(w.full_until("a", t0, &s).is_none());
        w.record("a", t0);
        w.record("a", t0);
        assert_eq!(
            w.full_until("a", t0, &s),
            Some(t0 + s.window),
            "site a full"
        );
        assert!(w.full_until("b", t0, &s).is_none(), "b has its own share");
        w.record("b", t0);
        assert!(w.full_until("c", t0, &s).is_some(), "all sites: 3 reached");
        assert!(
            w.full_until("a", t0 + s.window, &s).is_none(),
            "the window moved on"
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_pending_names_are_not_queued_twice() {
        let od = OnDemand::new(settings(10, 10));
        for _ in 0..3 {
            od.request("a.example", "site");
        }
        assert_eq!(Stats::get(&od.stats().queued), 1, "deduplicated");
        od.request("b.example", "site");
        od.request("c.example", "site");
        od.request("d.example", "site");
        assert_eq!(Stats::get(&od.stats().queued), 3);
        assert_eq!(Stats::get(&od.stats().queue_full), 1, "max_pending = 3");
        for bad in ["*.example", "192.0.2.1", "a..example", "x_y.example"] {
            od.request(bad, "site");
        }
        assert_eq!(Stats::get(&od.stats().invalid), 4);
    }

    #[test]
    fn refusals_are_remembered_until_they_run_out_and_the_cache_is_capped() {
        let od = OnDemand::new(settings(10, 10));
        let now = Instant::now();
        od.names()
            .refuse("a.example", now + Duration::from_secs(60));
        assert!(od.is_refused("a.example"));
        od.request("a.example", "s");
        assert_eq!(Stats::get(&od.stats().queued), 0, "not asked again");
        od.names().refuse("b.example", now);
        od.request("b.example", "s");
        assert_eq!(
            Stats::get(&od.stats().queued),
            1,
            "expired: looked at again"
        );
        let mut names = od.names();
        for i in 0..DENY_CACHE_MAX + 10 {
            names
                .refusals
                .push_back((now + Duration::from_secs(60), format!("n{i}")));
        }
        names.expire(now);
        assert_eq!(names.refusals.len(), DENY_CACHE_MAX);
    }

    #[test]
    fn one_site_cannot_fill_the_queue_and_sites_take_turns() {
        let mut s = settings(10, 10);
        s.max_pending = 4;
        s.max_pending_per_site = 2;
        let od = OnDemand::new(s);
        for n in ["a1", "a2", "a3"] {
            od.request(&format!("{n}.example"), "a");
        }
        assert_eq!(Stats::get(&od.stats().queue_full), 1, "a's share is 2");
        od.request("b1.example", "b");
        od.request("b2.example", "b");
        assert_eq!(Stats::get(&od.stats().queued), 4, "b still had room");
        let mut turns = Turns::default();
        for (site, name) in [("a", "a1"), ("a", "a2"), ("a", "a3"), ("b", "b1")] {
            turns.push(Job {
                name: name.into(),
                site: site.into(),
            });
        }
        let order: Vec<String> = std::iter::from_fn(|| turns.next())
            .map(|j| j.name)
            .collect();
        assert_eq!(order, ["a1", "b1", "a2", "a3"]);
    }

    #[tokio::test]
    async fn the_dns_check_wants_one_of_the_public_addresses() {
        let within = Duration::from_secs(5);
        let loopback: std::net::IpAddr = [127, 0, 0, 1].into();
        points_here("localhost", &[loopback], within)
            .await
            .expect("localhost is 127.0.0.1");
        let err = points_here("localhost", &[[192, 0, 2, 1].into()], within)
            .await
            .expect_err("not 192.0.2.1");
        assert!(err.contains("points elsewhere"), "{err}");
        let err = points_here("no-such-name.invalid", &[loopback], within)
            .await
            .expect_err(".invalid never resolves");
        assert!(err.contains("DNS"), "{err}");
    }

    #[tokio::test]
    async fn an_ask_url_where_nothing_listens_is_an_error_in_time() {
        let s = settings(1, 1);
        let started = Instant::now();
        let err = ask(&s, "a.example").await.expect_err("port 1");
        assert!(err.contains("127.0.0.1:1"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
