//! Prometheus metrics (OpenMetrics text), served by the admin listener of
//! config mode (`[admin] listen`, `GET /metrics`).
//!
//! The counters live in one registry per process: what they count happens
//! in many places (the connection loop, the `.htaccess` cache, the
//! certificate store, the ACME manager, the log writer), none of which
//! should carry a handle for it.  What is a fact of one running server
//! rather than a count — certificate expiry, ACME back-off per domain — is
//! read from that server at scrape time (`certs.rs`).

pub mod admin;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Request latency buckets (seconds): a static file answers in well under
/// a millisecond, PHP in tens to hundreds, a stuck upstream in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    site: Arc<String>,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteLabels {
    site: Arc<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    site: Arc<String>,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BlockingLabels {
    site: Arc<String>,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OnDemandLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LogLabels {
    log: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    /// The cluster's metrics, rendered once `cluster_on`.
    cluster_registry: Registry,
    cluster_on: std::sync::atomic::AtomicBool,
    requests: Family<RequestLabels, Counter>,
    /// By protocol, one counter each, resolved once (a request pays one
    /// atomic increment, no label lookup).
    by_protocol: [Counter; 4],
    duration: Family<SiteLabels, Histogram, fn() -> Histogram>,
    connections: Gauge,
    tls_handshakes: Family<ResultLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    acme_failures: Counter,
    acme_last_failure: Gauge,
    acme_orders: Counter,
    quic_retries: Counter,
    cluster_store_up: Gauge,
    log_dropped: Family<LogLabels, Counter>,
    refusals: Family<RefusalLabels, Counter>,
    blocking_jobs: Family<BlockingLabels, Counter>,
    on_demand: Family<OnDemandLabels, Counter>,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process's metrics, registered at first use.
pub fn global() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("htgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by site and status code",
            requests.clone(),
        );
        let protocols = Family::<ProtocolLabels, Counter>::default();
        let by_protocol = PROTOCOLS.map(|protocol| {
            protocols
                .get_or_create(&ProtocolLabels { protocol })
                .clone()
        });
        registry.register(
            "requests_by_protocol",
            "Requests received, by protocol (http/1.0, http/1.1, h2, h3), refused ones included",
            protocols,
        );
        let duration = Family::<SiteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register_with_unit(
            "request_duration",
            "Time from the request head to the response head, by site",
            Unit::Seconds,
            duration.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "connections_active",
            "Client connections open now (site listeners)",
            connections.clone(),
        );
        let tls_handshakes = Family::<ResultLabels, Counter>::default();
        registry.register(
            "tls_handshakes",
            "TLS handshakes by result (ok, failed, timeout)",
            tls_handshakes.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "reloads",
            "Reloads by kind (htaccess, config, certificate) and result (ok, error)",
            reloads.clone(),
        );
        let acme_failures = Counter::default();
        registry.register(
            "acme_failures",
            "ACME orders that failed",
            acme_failures.clone(),
        );
        let acme_last_failure = Gauge::default();
        registry.register(
            "acme_last_failure_timestamp_seconds",
            "When the last ACME order failed (Unix time; 0: never since the start)",
            acme_last_failure.clone(),
        );
        let acme_orders = Counter::default();
        registry.register(
            "acme_orders",
            "ACME orders this node placed with the CA (new orders, whatever their outcome)",
            acme_orders.clone(),
        );
        let quic_retries = Counter::default();
        registry.register(
            "quic_retries",
            "QUIC connections asked to prove their address first (a Retry: sent while the connection caps are half used, so that forged source addresses cannot take the places)",
            quic_retries.clone(),
        );
        // In a registry of its own, exported once a cluster exists: a
        // node without [cluster] has no store to be up or down.
        let mut cluster_registry = Registry::with_prefix("htgate");
        let cluster_store_up = Gauge::default();
        cluster_registry.register(
            "cluster_store_up",
            "1 while the cluster store (etcd) answers and every watch is live; 0 while it is unreachable and the node serves its last good state (exported only with [cluster])",
            cluster_store_up.clone(),
        );
        let log_dropped = Family::<LogLabels, Counter>::default();
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because the log writer was behind or a file could not be written",
            log_dropped.clone(),
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "refusals",
            "Requests refused to protect other tenants, by site and reason (budget: 500, the request's work budget ran out; engine_limit, blocking_limit: 503, over the site's share of the workers or of the blocking pool; blocking_deadline: 503, blocking work past its deadline; listing_entries: a listing cut at its entry cap; slow_body: 408 below the minimum body rate; php_limit: 503 over the site's PHP limit and queue; php_pool: 503, PHP-FPM unreachable or overloaded; with an empty site, a connection or request refused before routing: see SECURITY.md)",
            refusals.clone(),
        );
        let blocking_jobs = Family::<BlockingLabels, Counter>::default();
        registry.register(
            "blocking_jobs",
            "Requests whose engine work ran on the blocking pool instead of an async worker, by site and reason (a password to verify, a listing, a big first compile, a site on a network filesystem)",
            blocking_jobs.clone(),
        );
        let on_demand = Family::<OnDemandLabels, Counter>::default();
        registry.register(
            "on_demand_requests",
            "Names handed to certificates on demand, by outcome (issued; denied_by_ask: the ask URL refused; ask_failed: it did not answer 200 in time; rate_limited: over max_orders or max_orders_per_site; queue_full: more than max_pending names waiting; invalid: not a DNS name; dns_elsewhere: its DNS does not give one of public_addresses; order_failed: the CA's order failed)",
            on_demand.clone(),
        );
        let build = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
        build
            .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION"))])
            .set(1);
        registry.register("build_info", "The running htgate's version", build);
        Metrics {
            registry,
            requests,
            by_protocol,
            duration,
            connections,
            tls_handshakes,
            reloads,
            acme_failures,
            acme_last_failure,
            acme_orders,
            quic_retries,
            cluster_store_up,
            cluster_registry,
            cluster_on: std::sync::atomic::AtomicBool::new(false),
            log_dropped,
            refusals,
            blocking_jobs,
            on_demand,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// One answered request.
pub fn request(site: &Arc<String>, code: u16, took: Duration) {
    let m = global();
    m.requests
        .get_or_create(&RequestLabels {
            site: site.clone(),
            code,
        })
        .inc();
    m.duration
        .get_or_create(&SiteLabels { site: site.clone() })
        .observe(took.as_secs_f64());
}

/// The protocols of [`request_protocol`], in the order of its counters.
const PROTOCOLS: [&str; 4] = ["http/1.0", "http/1.1", "h2", "h3"];

/// One request received over `version` (counted before any limit).
pub fn request_protocol(version: http::Version) {
    let i = match version {
        http::Version::HTTP_09 | http::Version::HTTP_10 => 0,
        http::Version::HTTP_2 => 2,
        http::Version::HTTP_3 => 3,
        _ => 1,
    };
    global().by_protocol[i].inc();
}

/// Counts an open connection until dropped.
pub struct ConnectionGuard(());

impl ConnectionGuard {
    pub fn open() -> ConnectionGuard {
        global().connections.inc();
        ConnectionGuard(())
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        global().connections.dec();
    }
}

/// A QUIC Retry sent (address validation under load).
pub fn quic_retry() {
    global().quic_retries.inc();
}

/// QUIC Retries sent so far (tests).
pub fn quic_retries() -> u64 {
    global().quic_retries.get()
}

/// The end of a TLS handshake: `"ok"`, `"failed"` or `"timeout"`.
pub fn tls_handshake(result: &'static str) {
    global()
        .tls_handshakes
        .get_or_create(&ResultLabels { result })
        .inc();
}

/// A reload of `kind` (`"htaccess"`, `"config"`, `"certificate"`).
pub fn reload(kind: &'static str, ok: bool) {
    let result = if ok { "ok" } else { "error" };
    global()
        .reloads
        .get_or_create(&ReloadLabels { kind, result })
        .inc();
}

/// A failed ACME order.
pub fn acme_failure() {
    let m = global();
    m.acme_failures.inc();
    m.acme_last_failure.set(htgate_util::unix_now());
}

/// A name handed to certificates on demand, and what became of it.
pub fn on_demand(outcome: &'static str) {
    global()
        .on_demand
        .get_or_create(&OnDemandLabels { outcome })
        .inc();
}

/// An order placed with the CA.
pub fn acme_order() {
    global().acme_orders.inc();
}

/// Whether the cluster store is reachable (and every watch live).
/// The first call (a cluster starting) puts it in the exposition.
pub fn cluster_store_up(up: bool) {
    global().set_cluster_store_up(up);
}

/// A request's engine work sent to the blocking pool (`reason`: why).
pub fn blocking_job(site: &Arc<String>, reason: &'static str) {
    global()
        .blocking_jobs
        .get_or_create(&BlockingLabels {
            site: site.clone(),
            reason,
        })
        .inc();
}

/// A log line that was not written (`log`: `"access"` or `"error"`).
pub(crate) fn log_line_dropped(log: &'static str) {
    global().log_dropped.get_or_create(&LogLabels { log }).inc();
}

/// A request refused for `reason` (see `crate::logs::refusal`).
pub fn refusal(site: &Arc<String>, reason: &'static str) {
    global()
        .refusals
        .get_or_create(&RefusalLabels {
            site: site.clone(),
            reason,
        })
        .inc();
}

/// A refusal before any site is known (a connection or request head
/// refused by the server's own limits: `server::refusal::Reason`),
/// counted with an empty `site`.
pub fn refusal_unrouted(reason: &'static str) {
    refusal(&unrouted(), reason);
}

fn unrouted() -> Arc<String> {
    static EMPTY: OnceLock<Arc<String>> = OnceLock::new();
    EMPTY.get_or_init(|| Arc::new(String::new())).clone()
}

/// How many refusals of `reason` before routing were counted (tests).
pub fn refusals_of(reason: &'static str) -> u64 {
    global()
        .refusals
        .get_or_create(&RefusalLabels {
            site: unrouted(),
            reason,
        })
        .get()
}

/// The whole exposition: the process's metrics, then `server`'s.
pub fn render(server: Option<&Registry>) -> String {
    global().render(server)
}

impl Metrics {
    fn set_cluster_store_up(&self, up: bool) {
        self.cluster_store_up.set(i64::from(up));
        self.cluster_on
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn render(&self, server: Option<&Registry>) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would only
        // cut the answer short, which a scraper reports.
        let _ = encode_registry(&mut out, self.registry());
        if self.cluster_on.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = encode_registry(&mut out, &self.cluster_registry);
        }
        if let Some(r) = server {
            let _ = encode_registry(&mut out, r);
        }
        let _ = encode_eof(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_store_gauge_is_exported_only_with_a_cluster() {
        let m = Metrics::new();
        assert!(!m.render(None).contains("cluster_store_up"));
        m.set_cluster_store_up(false);
        assert!(m.render(None).contains("htgate_cluster_store_up 0"));
        m.set_cluster_store_up(true);
        assert!(m.render(None).contains("htgate_cluster_store_up 1"));
    }

    #[test]
    fn counters_and_histograms_are_rendered() {
        let site = Arc::new("unit-test-site".to_string());
        request(&site, 404, Duration::from_millis(3));
        request(&site, 404, Duration::from_millis(30));
        reload("config", false);
        refusal(&site, "slow_body");
        let text = render(None);
        assert!(
            text.contains("htgate_refusals_total{site=\"unit-test-site\",reason=\"slow_body\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("htgate_requests_total{site=\"unit-test-site\",code=\"404\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "htgate_request_duration_seconds_bucket{le=\"0.005\",site=\"unit-test-site\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("htgate_request_duration_seconds_count{site=\"unit-test-site\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("htgate_reloads_total{kind=\"config\",result=\"error\"}"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE htgate_connections_active gauge"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
