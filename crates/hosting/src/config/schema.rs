//! The shape of `htgate.toml`.  Every table denies unknown keys.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Addresses to listen on.
    #[serde(default)]
    pub listen: Vec<ListenConfig>,
    /// What to do with client-sent `HTTPS`, `X-Forwarded-Proto` and
    /// `Forwarded` headers.
    #[serde(default)]
    pub client_https_headers: ClientHttpsHeaders,
    /// Front proxies (addresses or networks) whose HTTPS headers are kept.
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
    /// Where uploaded certificates live: `<dir>/<site name>/fullchain.pem`
    /// and `privkey.pem`.
    pub certificates_dir: Option<PathBuf>,
    /// PEM files of CA roots to trust besides the Mozilla roots when
    /// checking an uploaded chain (a private CA).
    #[serde(default)]
    pub extra_ca_roots: Vec<PathBuf>,
    /// The certificate for clients without SNI and names without one of
    /// their own.  Without it a self-signed certificate is made at start.
    pub default_certificate: Option<CertFiles>,
    /// Automatic certificates.
    pub acme: Option<AcmeConfig>,
    /// How often (seconds) certificate files are looked at for changes,
    /// deletions and expiry.
    #[serde(default = "default_cert_check_seconds")]
    pub cert_check_seconds: u64,
    /// What a `.htaccess` with errors does: "apache" (500 for requests
    /// under its folder, as Apache) or "keep-last-good".
    #[serde(default)]
    pub on_htaccess_error: OnHtaccessError,
    /// How often (seconds) every cached `.htaccess` is re-checked, for
    /// changes whose events did not arrive (network filesystems).  0: never.
    #[serde(default = "default_reload_poll_seconds")]
    pub reload_poll_seconds: u64,
    /// Watch site roots and certificate folders with inotify (off: only
    /// the periodic re-check).
    #[serde(default = "default_true")]
    pub watch: bool,
    /// One access log for every site without its own `access_log`:
    /// Combined Log Format with `ServerName:port ` in front (Debian's
    /// `vhost_combined`).
    pub access_log: Option<Spanned<PathBuf>>,
    /// Where tracing's events go (default: stderr).
    pub error_log: Option<Spanned<PathBuf>>,
    /// The error log's level or filter (`info`, `warn,htaccess=debug`);
    /// `RUST_LOG` overrides it.  Default: `warn`.
    pub log_level: Option<Spanned<String>>,
    /// Every site's limits (SECURITY.md, "Limits"); a site's own
    /// `[site.limits]` overrides them key by key.
    pub limits: Option<Spanned<LimitsConfig>>,
    /// After SIGTERM/SIGINT, how long (seconds) in-flight requests get to
    /// finish; then the remaining connections are reset and the process
    /// exits, even if a request is stuck.  Read at start.
    #[serde(default = "default_shutdown_drain_seconds")]
    pub shutdown_drain_seconds: u64,
    /// A response the client takes no data of for this long (seconds) is
    /// dropped, and a connection where nothing moves for that long while a
    /// response waits is reset.  Read at start.
    #[serde(default = "default_send_timeout_seconds")]
    pub send_timeout_seconds: u64,
    /// Response bodies (over 16 KiB, or of unknown size) one client address
    /// may have in progress at once; further ones wait.  Read at start.
    #[serde(default = "default_max_sending_per_client")]
    pub max_sending_per_client: usize,
    /// The admin listener (metrics).
    pub admin: Option<AdminConfig>,
    /// Several nodes sharing certificates, ACME work and sites.
    pub cluster: Option<Spanned<ClusterConfig>>,
    // The PHP settings: at the top level every site's defaults; a
    // `[[site]]` may set its own (all but `php_body_memory_bytes`, a bound
    // on the server's memory). Written out twice because serde's flatten
    // loses toml's spans and cannot deny unknown keys.
    /// Read a PHP request's whole body before a PHP-FPM worker is taken
    /// (default true); false streams it to PHP as it arrives.
    pub php_request_buffering: Option<bool>,
    /// The first bytes of a PHP request's body must come within this many
    /// seconds; the deadline never runs further ahead (default 20).
    pub php_body_timeout_seconds: Option<Spanned<u64>>,
    /// Each this many bytes received push the deadline one second further
    /// (default 500; 0: no minimum rate).
    pub php_body_min_rate: Option<Spanned<u64>>,
    /// PHP requests of one site that may run at once (default 10).
    pub php_max_concurrent: Option<Spanned<u64>>,
    /// PHP requests of one site that may wait for a turn (default 50).
    pub php_queue_length: Option<Spanned<u64>>,
    /// The longest wait for a turn, then 503 with Retry-After (default 5).
    pub php_queue_timeout_seconds: Option<Spanned<u64>>,
    /// Bodies of PHP requests up to this size are read into memory,
    /// larger ones into an unnamed temp file (default 65536).
    pub php_body_memory_bytes: Option<Spanned<u64>>,
    #[serde(default)]
    pub site: Vec<SiteConfig>,
}

/// Sites kept in the cluster store: a TOML document of `[[site]]` tables,
/// written exactly as in htgate.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SitesDocument {
    #[serde(default)]
    pub site: Vec<SiteConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// etcd endpoints (`http://10.0.0.5:2379`); needs a build with the
    /// `etcd` feature.
    #[serde(default)]
    pub etcd: Vec<Spanned<String>>,
    /// Instead of etcd: a folder every node can write (one machine, or an
    /// NFS share).
    pub folder: Option<Spanned<PathBuf>>,
    /// Every key in etcd starts with it, so clusters can share one etcd.
    #[serde(default = "default_cluster_prefix")]
    pub prefix: Spanned<String>,
    /// This node's name in logs and lock owners (default: the host name).
    pub node: Option<String>,
    /// Where the sites from the store are kept between restarts, so a node
    /// that restarts while the store is down still serves them.
    pub cache: Option<PathBuf>,
    /// Bound on every store call (milliseconds).
    #[serde(default = "default_cluster_timeout_ms")]
    pub timeout_ms: u64,
    /// How long a dead node's ACME lock outlives it (seconds).
    #[serde(default = "default_lock_ttl_seconds")]
    pub lock_ttl_seconds: u64,
    /// etcd user; the password is read from `password_file`.
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// PEM CA of etcd's server certificates (https:// endpoints).
    pub ca: Option<PathBuf>,
    /// PEM client certificate and key (etcd's `--client-cert-auth`).
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

fn default_cluster_prefix() -> Spanned<String> {
    Spanned::new(0..0, "/htgate/".to_string())
}

fn default_shutdown_drain_seconds() -> u64 {
    htgate_server::limits::DRAIN_TIMEOUT.as_secs()
}

fn default_send_timeout_seconds() -> u64 {
    htgate_server::limits::SEND_TIMEOUT.as_secs()
}

fn default_max_sending_per_client() -> usize {
    htgate_server::limits::MAX_SENDING_PER_CLIENT
}

fn default_cluster_timeout_ms() -> u64 {
    2000
}

fn default_lock_ttl_seconds() -> u64 {
    15
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where `GET /metrics` is served (plain HTTP; keep it on loopback or
    /// a management network).
    pub listen: Spanned<SocketAddr>,
}

fn default_reload_poll_seconds() -> u64 {
    2
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnHtaccessError {
    #[default]
    Apache,
    KeepLastGood,
}

fn default_cert_check_seconds() -> u64 {
    10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    pub address: Spanned<SocketAddr>,
    /// A TLS listener (certificates chosen by SNI).
    #[serde(default)]
    pub tls: bool,
    /// Also serve HTTP/3 (QUIC) on this TLS listener's port, over UDP
    /// (same certificates, sites and limits).
    pub http3: Option<Spanned<bool>>,
    /// With `http3`: advertise it to clients in an `Alt-Svc` header on the
    /// answers given over TCP (browsers switch only then).
    #[serde(default = "default_true")]
    pub alt_svc: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientHttpsHeaders {
    /// htgate is the TLS front: remove what the client sent, set `HTTPS: on`
    /// and `X-Forwarded-Proto: https` on TLS connections.
    #[default]
    Strip,
    /// Apache's raw behaviour: they are ordinary client headers.
    Pass,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertFiles {
    /// PEM chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// The ACME directory URL, e.g. Let's Encrypt's
    /// `https://acme-v02.api.letsencrypt.org/directory`.
    pub directory: String,
    /// Contact addresses for the account (`mailto:...`).
    #[serde(default)]
    pub contact: Vec<String>,
    /// Account key and certificates are kept here.
    pub storage: PathBuf,
    /// Renew this many days before expiry; default: when a third of the
    /// lifetime is left.
    pub renew_before_days: Option<u64>,
    /// An extra PEM root to trust for the ACME server's own HTTPS (a
    /// private or test CA such as pebble).
    pub ca_root: Option<PathBuf>,
    /// The ACME profile orders ask for (e.g. `"shortlived"`) when a site
    /// sets none; it must be one the CA's directory lists.
    pub profile: Option<String>,
    /// The first back-off after a failed order, doubled each time.
    #[serde(default = "default_retry_seconds")]
    pub retry_seconds: u64,
    /// Certificates ordered at the first handshake for names a site's
    /// `on_demand` patterns (or `on_demand_any`) allow.
    pub on_demand: Option<Spanned<OnDemandConfig>>,
}

/// `[acme.on_demand]`: the gate in front of on-demand orders
/// (`acme::on_demand`; SECURITY.md, "Limits").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnDemandConfig {
    /// Asked `GET <ask>?domain=<name>` before each order: 200 allows it,
    /// anything else (or no answer in time) refuses it. Plain `http://`.
    pub ask: Spanned<String>,
    /// How long the `ask` URL may take to answer (milliseconds).
    #[serde(default = "default_ask_timeout_ms")]
    pub ask_timeout_ms: u64,
    /// Orders for all sites together per `rate_window_seconds`.
    #[serde(default = "default_on_demand_max_orders")]
    pub max_orders: u32,
    /// Orders for one site per `rate_window_seconds`.
    #[serde(default = "default_on_demand_max_orders_per_site")]
    pub max_orders_per_site: u32,
    /// The window of both order limits (seconds).
    #[serde(default = "default_hour")]
    pub rate_window_seconds: u64,
    /// How long a refused name is not asked about again (seconds).
    #[serde(default = "default_hour")]
    pub deny_cache_seconds: u64,
    /// Names waiting to be looked at; more are dropped (and counted).
    #[serde(default = "default_on_demand_max_pending")]
    pub max_pending: usize,
    /// Names of one site waiting at once (so one site's flood leaves room
    /// for the others').
    #[serde(default = "default_on_demand_max_pending_per_site")]
    pub max_pending_per_site: usize,
    /// This host's public addresses: when set, a name is ordered only if
    /// its DNS (A/AAAA) gives one of them ("any name whose DNS points
    /// here"), looked up before the `ask` URL is.
    #[serde(default)]
    pub public_addresses: Vec<Spanned<String>>,
}

fn default_on_demand_max_pending_per_site() -> usize {
    20
}

fn default_ask_timeout_ms() -> u64 {
    5000
}

fn default_on_demand_max_orders() -> u32 {
    60
}

fn default_on_demand_max_orders_per_site() -> u32 {
    10
}

fn default_hour() -> u64 {
    3600
}

fn default_on_demand_max_pending() -> usize {
    100
}

fn default_retry_seconds() -> u64 {
    60
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// A short name: the folder of its uploaded certificate, the name in
    /// `htgate cert` commands and logs.
    pub name: Spanned<String>,
    /// Exact names and `*.example.com` wildcards.
    pub domains: Vec<Spanned<String>>,
    /// The document root.
    pub root: Spanned<PathBuf>,
    /// Where this site's uploaded certificate is (instead of
    /// `certificates_dir/<name>`).
    pub certificate: Option<UploadDir>,
    /// Strict-Transport-Security on HTTPS answers.
    pub hsts: Option<Spanned<Hsts>>,
    /// Redirect every plain-HTTP request to HTTPS (301) before the
    /// `.htaccess` files run.
    #[serde(default)]
    pub force_https: bool,
    /// The ACME profile of this site's automatic certificates (instead of
    /// `[acme] profile`); it must be one the CA's directory lists.
    pub acme_profile: Option<String>,
    /// Get certificates for this site's exact domains over ACME (when
    /// `[acme]` is configured).
    #[serde(default = "default_true")]
    pub acme: bool,
    /// Names beyond `domains` this site takes, with a certificate ordered
    /// at their first handshake (`*.customer.example`, `shop.example`),
    /// gated by `[acme.on_demand]`. Never a name another site lists.
    #[serde(default)]
    pub on_demand: Vec<Spanned<String>>,
    /// This site takes every name no site lists or matches (at most one
    /// site), each gated by the `ask` URL as `on_demand` names are.
    #[serde(default)]
    pub on_demand_any: bool,
    /// The site's PHP-FPM pool: a Unix socket (`/run/php/site.sock`,
    /// `unix:/run/php/site.sock`) or `host:port`.  Without it `.php` files
    /// are never run (and never sent as source: they answer 403).
    pub php_fpm: Option<Spanned<String>>,
    /// Pass `php_value`/`php_flag` lines of the site's `.htaccess` files
    /// to PHP-FPM as `PHP_VALUE` (what hosts with mod_php allowed).  With
    /// `false` a directory that sets one answers 500, as Apache without
    /// mod_php does, and the error log says why.
    #[serde(default = "default_true")]
    pub php_values: bool,
    /// How long PHP may take to start answering, and between two reads
    /// of its answer (Apache's `Timeout`, 300 s in Debian).
    #[serde(default = "default_php_timeout")]
    pub php_timeout_seconds: u64,
    // This site's PHP body and fair-sharing settings (the top-level
    // ones when not set).
    /// Read a PHP request's whole body before a PHP-FPM worker is taken
    /// (default true); false streams it to PHP as it arrives.
    pub php_request_buffering: Option<bool>,
    /// The first bytes of a PHP request's body must come within this many
    /// seconds; the deadline never runs further ahead (default 20).
    pub php_body_timeout_seconds: Option<Spanned<u64>>,
    /// Each this many bytes received push the deadline one second further
    /// (default 500; 0: no minimum rate).
    pub php_body_min_rate: Option<Spanned<u64>>,
    /// PHP requests of one site that may run at once (default 10).
    pub php_max_concurrent: Option<Spanned<u64>>,
    /// PHP requests of one site that may wait for a turn (default 50).
    pub php_queue_length: Option<Spanned<u64>>,
    /// The longest wait for a turn, then 503 with Retry-After (default 5).
    pub php_queue_timeout_seconds: Option<Spanned<u64>>,
    /// This site's own access log (Combined Log Format); without it the
    /// site's lines go to the top-level `access_log`, if any.
    pub access_log: Option<Spanned<PathBuf>>,
    /// Folders besides `root` that the site's file tests (`-f`, `-d`,
    /// `filesize()`…) may look at; anything else does not exist for them.
    #[serde(default)]
    pub extra_paths: Vec<PathBuf>,
    /// Whether the root is on a network filesystem (NFS, CIFS, FUSE…),
    /// whose `stat`s may hang: then every request of the site runs on the
    /// blocking pool.  Unset: told from the mount table at start.
    pub network_filesystem: Option<bool>,
    /// This site's limits, key by key over the top-level `[limits]`.
    pub limits: Option<Spanned<LimitsConfig>>,
}

/// A site's share of the process (SECURITY.md, "Limits").  Unset keys
/// take the top-level `[limits]` value, then the built-in default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Work units one request may use (`engine::budget`).
    pub request_budget: Option<u64>,
    /// Requests of the site running the engine on the async workers at once.
    pub engine_max_concurrent: Option<usize>,
    /// Requests of the site holding a blocking-pool thread at once.
    pub blocking_max_concurrent: Option<usize>,
    /// How long a request waits for its site's turn before a 503.
    pub queue_timeout_ms: Option<u64>,
    /// Requests of the site that may wait at once (more: 503 at once).
    pub queue_length: Option<usize>,
    /// Deadline of one piece of blocking work (password hashing, a
    /// listing, a cold compile).
    pub blocking_timeout_ms: Option<u64>,
}

impl LimitsConfig {
    /// `self` over `defaults`, key by key.
    pub fn over(&self, defaults: &LimitsConfig) -> LimitsConfig {
        LimitsConfig {
            request_budget: self.request_budget.or(defaults.request_budget),
            engine_max_concurrent: self
                .engine_max_concurrent
                .or(defaults.engine_max_concurrent),
            blocking_max_concurrent: self
                .blocking_max_concurrent
                .or(defaults.blocking_max_concurrent),
            queue_timeout_ms: self.queue_timeout_ms.or(defaults.queue_timeout_ms),
            queue_length: self.queue_length.or(defaults.queue_length),
            blocking_timeout_ms: self.blocking_timeout_ms.or(defaults.blocking_timeout_ms),
        }
    }

    /// What is wrong with these values, if anything.
    pub fn check(&self) -> Result<(), String> {
        if self.request_budget.is_some_and(|b| b < 10_000) {
            return Err(
                "request_budget must be at least 10000 (units; the default is 1000000)".into(),
            );
        }
        for (key, v) in [
            ("engine_max_concurrent", self.engine_max_concurrent),
            ("blocking_max_concurrent", self.blocking_max_concurrent),
            ("queue_length", self.queue_length),
        ] {
            if v == Some(0) {
                return Err(format!("{key} must be at least 1"));
            }
        }
        for (key, v) in [
            ("queue_timeout_ms", self.queue_timeout_ms),
            ("blocking_timeout_ms", self.blocking_timeout_ms),
        ] {
            if v == Some(0) {
                return Err(format!("{key} must be at least 1"));
            }
        }
        Ok(())
    }
}

fn default_php_timeout() -> u64 {
    300
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadDir {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hsts {
    /// Seconds; one year is what the preload list asks for.
    #[serde(default = "default_hsts_max_age")]
    pub max_age: u64,
    #[serde(default)]
    pub include_subdomains: bool,
    #[serde(default)]
    pub preload: bool,
}

fn default_hsts_max_age() -> u64 {
    31_536_000
}

impl Hsts {
    /// The header value.
    pub(crate) fn header_value(&self) -> String {
        let mut v = format!("max-age={}", self.max_age);
        if self.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if self.preload {
            v.push_str("; preload");
        }
        v
    }
}
