//! Starting and reloading config mode: certificates, listeners, sites,
//! background tasks.
//!
//! A reload (SIGHUP, or htgate.toml changed on disk) builds the new sites
//! and certificate store first; a configuration with errors is refused and
//! the running one kept.  Listeners present in both configurations keep
//! their sockets; new ones are bound, removed ones drain and close.

use super::certs::{CertStore, Served, SiteCertConfig};
use super::routing;
use super::{Front, HostedSite, Hosting};
use crate::config::{ClientHttpsHeaders, Config, OnHtaccessError};
use arc_swap::ArcSwap;
use htgate_engine::site::{HtaccessCache, OnError, Site, Validation};
use htgate_server::listener::{serve, Listener};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A hosted site's limits: `[site.limits]` over `[limits]` over the
/// built-in defaults; its file tests confined to its root and
/// `extra_paths`.
fn site_limits(
    site: &Site,
    s: &crate::config::SiteConfig,
    defaults: &crate::config::LimitsConfig,
    mounts: Option<&str>,
) -> htgate_engine::limits::SiteLimits {
    use htgate_engine::limits::{self as l, Gate, SiteLimits};
    use std::time::Duration;
    let c = match &s.limits {
        Some(own) => own.get_ref().over(defaults),
        None => defaults.clone(),
    };
    let wait = c
        .queue_timeout_ms
        .map_or(l::DEFAULT_QUEUE_WAIT, Duration::from_millis);
    let queue = c.queue_length.unwrap_or(l::DEFAULT_QUEUE_LENGTH);
    let mut confine = vec![site.docroot.clone()];
    confine.extend(
        s.extra_paths
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches('/').to_string()),
    );
    SiteLimits {
        name: Arc::new(s.name.get_ref().clone()),
        budget: c
            .request_budget
            .unwrap_or(htgate_util::budget::DEFAULT_BUDGET),
        confine: Some(confine.into()),
        engine: Some(Arc::new(Gate::new(
            c.engine_max_concurrent
                .unwrap_or_else(l::default_engine_concurrency),
            queue,
            wait,
        ))),
        blocking: Arc::new(Gate::new(
            c.blocking_max_concurrent
                .unwrap_or(l::DEFAULT_BLOCKING_CONCURRENCY),
            queue,
            wait,
        )),
        blocking_deadline: c
            .blocking_timeout_ms
            .map_or(l::DEFAULT_BLOCKING_DEADLINE, Duration::from_millis),
        inline: !s
            .network_filesystem
            .unwrap_or_else(|| htgate_engine::fs_kind::is_network_path(mounts, s.root.get_ref())),
        long_runs: Arc::default(),
    }
}

/// The shared certificate: the configured one, else a self-signed one made
/// in memory (said loudly: clients without SNI will see a warning).
fn default_certificate(config: &Config) -> anyhow::Result<Arc<Served>> {
    let (chain, key) = match &config.file.default_certificate {
        Some(c) => htgate_server::tls::load_pem_files(&c.cert, &c.key)
            .map_err(|e| anyhow::anyhow!("default_certificate: {e}"))?,
        None => {
            tracing::warn!("no default_certificate configured: clients without SNI and names without a certificate get a self-signed one made in memory");
            htgate_server::tls::self_signed(&["localhost".to_string()])?
        }
    };
    Ok(Arc::new(Served::from_chain(chain, key).map_err(|e| {
        anyhow::anyhow!("default_certificate: {e}")
    })?))
}

pub fn acme_settings(a: &crate::config::AcmeConfig) -> crate::acme::AcmeSettings {
    crate::acme::AcmeSettings {
        directory_url: a.directory.clone(),
        contact: a.contact.clone(),
        storage: a.storage.clone(),
        ca_root: a.ca_root.clone(),
        renew_before: a
            .renew_before_days
            .map(|d| Duration::from_secs(d.saturating_mul(86_400))),
        retry_base: Duration::from_secs(a.retry_seconds.max(1)),
        profile: a.profile.clone(),
        ..crate::acme::AcmeSettings::new(a.directory.clone(), a.storage.clone())
    }
}

/// Each site's own ACME profile (`acme_profile`), by domain.
pub fn site_acme_profiles(config: &Config) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    for site in &config.file.site {
        if let Some(profile) = &site.acme_profile {
            for domain in &site.domains {
                out.insert(domain.get_ref().clone(), profile.clone());
            }
        }
    }
    out
}

/// What each site contributes to certificate selection.
pub(crate) fn site_cert_configs(config: &Config) -> Vec<SiteCertConfig> {
    config
        .file
        .site
        .iter()
        .map(|s| SiteCertConfig {
            name: s.name.get_ref().clone(),
            domains: s.domains.iter().map(|d| d.get_ref().clone()).collect(),
            upload_dir: config.upload_dir(s),
            acme: s.acme,
            on_demand: s.on_demand.iter().map(|p| p.get_ref().clone()).collect(),
            on_demand_any: s.on_demand_any,
        })
        .collect()
}

/// The roots an uploaded chain may end at: Mozilla's, plus the
/// configured private ones.
pub fn trust(config: &Config) -> anyhow::Result<crate::tls::validate::Trust> {
    use rustls_pki_types::pem::PemObject;
    let mut extra = Vec::new();
    for path in &config.file.extra_ca_roots {
        let data = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("extra_ca_roots: {}: {e}", path.display()))?;
        for der in rustls_pki_types::CertificateDer::pem_slice_iter(&data) {
            extra
                .push(der.map_err(|e| anyhow::anyhow!("extra_ca_roots: {}: {e}", path.display()))?);
        }
    }
    Ok(crate::tls::validate::Trust::with_extra_roots(extra))
}

/// The certificate store of a configuration (also used offline by
/// `htgate cert list`).
pub fn cert_store(
    config: &Config,
    acme: Option<Arc<crate::acme::AcmeManager>>,
) -> anyhow::Result<Arc<CertStore>> {
    Ok(CertStore::new(
        site_cert_configs(config),
        default_certificate(config)?,
        trust(config)?,
        acme,
    ))
}

/// Builds the sites of a configuration for the given public ports.
pub fn hosting(
    config: &Config,
    http_port: u16,
    https_port: u16,
    challenges: Option<crate::acme::Challenges>,
    cluster: Option<Arc<crate::cluster::Cluster>>,
) -> anyhow::Result<Hosting> {
    if let Some(p) = &config.file.error_log {
        htgate_telemetry::logs::writer::check_writable(p.get_ref())
            .map_err(|e| anyhow::anyhow!("error_log {}: {e}", p.get_ref().display()))?;
    }
    let mut sites = Vec::new();
    let mut map = routing::DomainMap::default();
    let mounts = htgate_engine::fs_kind::mount_table();
    let defaults = config
        .file
        .limits
        .as_ref()
        .map(|l| l.get_ref().clone())
        .unwrap_or_default();
    for (i, s) in config.file.site.iter().enumerate() {
        // ServerName first (the first exact domain), then the aliases.
        let mut names: Vec<String> = s
            .domains
            .iter()
            .map(|d| d.get_ref().clone())
            .filter(|d| !d.starts_with("*."))
            .collect();
        names.extend(
            s.domains
                .iter()
                .map(|d| d.get_ref().clone())
                .filter(|d| d.starts_with("*.")),
        );
        for d in &s.domains {
            map.insert(d.get_ref(), i);
        }
        // Below every site's listed domains (`routing`): on demand never
        // takes a name another site lists.
        for p in &s.on_demand {
            map.insert_on_demand(p.get_ref(), i);
        }
        if s.on_demand_any {
            map.set_catch_all(i);
        }
        let mut site = Site::new(s.root.get_ref(), names);
        site.cache = HtaccessCache::new(
            Validation::Watched,
            match config.file.on_htaccess_error {
                OnHtaccessError::Apache => OnError::Apache,
                OnHtaccessError::KeepLastGood => OnError::KeepLastGood,
            },
        );
        site.cache
            .set_modules(htgate_engine::compile::Modules::hosting(false));
        site.enforce_symlink_owner();
        site.limits = site_limits(&site, s, &defaults, mounts.as_deref());
        site.http_port = http_port;
        site.https_port = https_port;
        site.pass_client_https_headers =
            config.file.client_https_headers == ClientHttpsHeaders::Pass;
        match &s.php_fpm {
            Some(fpm) => {
                let upstream = htgate_fastcgi::Upstream::parse(fpm.get_ref())
                    .map_err(|e| anyhow::anyhow!("site {}: php_fpm: {e}", s.name.get_ref()))?;
                site.enable_php(htgate_engine::site::PhpSite::new(
                    Arc::new(s.name.get_ref().clone()),
                    upstream,
                    std::time::Duration::from_secs(s.php_timeout_seconds),
                    &config.php_settings(s),
                    s.php_values,
                ));
            }
            // SECURITY: a hosted site without PHP never sends `.php` source
            // (wp-config.php holds database passwords).
            None => site.deny_php_source(),
        }
        let hsts = match &s.hsts {
            Some(h) => Some(
                http::HeaderValue::from_str(&h.get_ref().header_value())
                    .map_err(|e| anyhow::anyhow!("hsts: {e}"))?,
            ),
            None => None,
        };
        let log_route = htgate_server::access_log::Route {
            site: Arc::new(s.name.get_ref().clone()),
            log: access_target(config, s, site.server_names.first())?,
        };
        sites.push(Arc::new(HostedSite {
            name: s.name.get_ref().clone(),
            log_name: Arc::from(s.name.get_ref().as_str()),
            site: Arc::new(site),
            hsts,
            force_https: s.force_https,
            log_route,
        }));
    }
    let proxies: Vec<String> = config
        .file
        .trusted_proxies
        .iter()
        .map(|p| p.get_ref().clone())
        .collect();
    Ok(Hosting {
        sites,
        map,
        trusted_proxies: super::parse_proxies(&proxies),
        challenges,
        cluster,
        https_port,
    })
}

/// Where a site's access-log lines go: its own file (plain Combined), else
/// the shared one (with `ServerName:port ` in front, as Debian's
/// `vhost_combined`, so that one file tells the sites apart).  The file
/// must be writable now: a start or reload fails rather than lose lines.
fn access_target(
    config: &Config,
    s: &crate::config::SiteConfig,
    server_name: Option<&String>,
) -> anyhow::Result<Option<htgate_server::access_log::AccessTarget>> {
    let (path, vhost) = match (&s.access_log, &config.file.access_log) {
        (Some(own), _) => (own.get_ref(), None),
        (None, Some(shared)) => (
            shared.get_ref(),
            Some(Arc::from(
                server_name.map_or(s.name.get_ref().as_str(), String::as_str),
            )),
        ),
        (None, None) => return Ok(None),
    };
    htgate_telemetry::logs::writer::check_writable(path)
        .map_err(|e| anyhow::anyhow!("access_log {}: {e}", path.display()))?;
    Ok(Some(htgate_server::access_log::AccessTarget {
        path: Arc::from(path.as_path()),
        vhost,
    }))
}

/// One bound listener and how to stop it.
struct RunningListener {
    /// As configured (port 0 stays 0 here).
    configured: SocketAddr,
    tls: bool,
    bound: SocketAddr,
    /// Serves HTTP/3 on `bound`'s port over UDP too.
    http3: bool,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    join: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// The parts a reload replaces, and what it reuses.
pub struct Shared {
    pub config: ArcSwap<Config>,
    pub hosting: Arc<ArcSwap<Hosting>>,
    pub store: Arc<ArcSwap<CertStore>>,
    pub acme: Option<Arc<crate::acme::AcmeManager>>,
    /// Certificates on demand, with `[acme.on_demand]` (read at start).
    pub on_demand: Option<Arc<crate::acme::OnDemand>>,
    /// The cluster store, with `[cluster]`.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    sync: std::sync::OnceLock<Arc<super::cluster_sync::NodeSync>>,
    tls: Arc<rustls::ServerConfig>,
    handler: Arc<Front>,
    /// The bound admin (metrics) address, when `[admin]` is configured.
    pub admin_addr: Option<SocketAddr>,
    listeners: tokio::sync::Mutex<Vec<RunningListener>>,
    domains_tx: Option<tokio::sync::watch::Sender<Vec<String>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Serialises reloads (SIGHUP and a file event at once).
    reloading: tokio::sync::Mutex<()>,
    /// The file watcher (None: it could not start; polling runs instead).
    pub(crate) watcher: Mutex<Option<crate::watch::Watcher>>,
}

/// A running config-mode server.
pub struct HostingServer {
    pub shared: Arc<Shared>,
}

/// The SNI resolver of config mode: the store current at each handshake.
#[derive(Debug)]
struct SwappableResolver(Arc<ArcSwap<CertStore>>);

impl rustls::server::ResolvesServerCert for SwappableResolver {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let store = self.0.load();
        use rustls::SignatureScheme as S;
        let ecdsa = hello.signature_schemes().iter().any(|s| {
            matches!(
                s,
                S::ECDSA_NISTP256_SHA256 | S::ECDSA_NISTP384_SHA384 | S::ECDSA_NISTP521_SHA512
            )
        });
        let served = store.resolve_handshake(hello.server_name(), htgate_util::unix_now(), ecdsa);
        Some(served.certified.clone())
    }
}

impl HostingServer {
    /// The first bound address of the given kind.
    pub fn addr(&self, tls: bool) -> Option<SocketAddr> {
        self.addrs()
            .into_iter()
            .find(|(_, t)| *t == tls)
            .map(|(a, _)| a)
    }

    /// Every bound address, `true` for TLS.
    pub fn addrs(&self) -> Vec<(SocketAddr, bool)> {
        match self.shared.listeners.try_lock() {
            Ok(l) => l.iter().map(|l| (l.bound, l.tls)).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The UDP addresses where HTTP/3 is served.
    pub fn http3_addrs(&self) -> Vec<SocketAddr> {
        match self.shared.listeners.try_lock() {
            Ok(l) => l.iter().filter(|l| l.http3).map(|l| l.bound).collect(),
            Err(_) => Vec::new(),
        }
    }

    pub fn store(&self) -> Arc<CertStore> {
        self.shared.store.load_full()
    }

    pub fn acme(&self) -> Option<Arc<crate::acme::AcmeManager>> {
        self.shared.acme.clone()
    }

    pub fn hosting(&self) -> Arc<Hosting> {
        self.shared.hosting.load_full()
    }

    /// The bound admin (metrics) address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.shared.admin_addr
    }

    /// Re-reads the configuration file; on errors the running
    /// configuration stays and the errors are returned (and logged).
    pub async fn reload(&self) -> Result<(), String> {
        super::reload::reload_and_rewatch(&self.shared).await
    }

    /// Stops accepting, drains in-flight requests, stops background work.
    pub async fn shutdown(self) {
        if let Ok(mut w) = self.shared.watcher.lock() {
            w.take();
        }
        if let Ok(mut tasks) = self.shared.tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
        let mut listeners = self.shared.listeners.lock().await;
        for l in listeners.iter_mut() {
            if let Some(tx) = l.shutdown.take() {
                let _ = tx.send(());
            }
        }
        for l in listeners.iter_mut() {
            if let Some(join) = l.join.take() {
                let _ = join.await;
            }
        }
    }
}

/// Binds a socket (nothing is served on it yet).
async fn bind(
    addr: SocketAddr,
    tls: bool,
    http3: Option<bool>,
    shared_tls: &Arc<rustls::ServerConfig>,
) -> anyhow::Result<(Listener, SocketAddr)> {
    let mut l = Listener::bind(addr, tls.then(|| shared_tls.clone()))
        .await
        .map_err(|e| htgate_server::listener::bind_error(addr, &e, "another [[listen]] address"))?;
    if let Some(advertise) = http3 {
        l = l.with_http3(advertise).map_err(|e| {
            let err = htgate_server::listener::bind_error(addr, &e, "another [[listen]] address");
            anyhow::anyhow!("HTTP/3 (UDP): {err}")
        })?;
    }
    let bound = l.local_addr()?;
    Ok((l, bound))
}

/// Starts serving a bound socket with `handler`.
fn serve_on(
    configured: SocketAddr,
    tls: bool,
    (l, bound): (Listener, SocketAddr),
    handler: &Arc<Front>,
) -> RunningListener {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let http3 = l.http3_addr().is_some();
    let h: Arc<dyn htgate_server::Handler> = Arc::new(super::proxy::Proxied {
        inner: Arc::new(crate::for_hosting(handler.clone())),
        hosting: handler.hosting.clone(),
    });
    let join = tokio::spawn(serve(vec![l], h, async move {
        let _ = rx.await;
    }));
    RunningListener {
        configured,
        tls,
        bound,
        http3,
        shutdown: Some(tx),
        join: Some(join),
    }
}

/// The ports the sites are known as: the first plain and TLS listeners'.
fn public_ports(bound: &[(SocketAddr, bool)]) -> (u16, u16) {
    let port = |tls: bool, default: u16| {
        bound
            .iter()
            .find(|(_, t)| *t == tls)
            .map(|(a, _)| a.port())
            .unwrap_or(default)
    };
    (port(false, 80), port(true, 443))
}

/// Starts config mode on the current tokio runtime.
pub async fn start(config: &Config) -> anyhow::Result<HostingServer> {
    let cluster = match &config.file.cluster {
        Some(c) => Some(crate::cluster::Cluster::from_config(c.get_ref())?),
        None => None,
    };
    // The sites the store had at the last run (its cache) are served from
    // the start; the first snapshot from the store reloads with its own.
    let merged;
    let config = match &cluster {
        Some(c) => {
            merged = c.merged_config(config);
            &merged
        }
        None => config,
    };
    let acme = config.file.acme.as_ref().map(|a| match &cluster {
        Some(c) => crate::acme::AcmeManager::clustered(acme_settings(a), c.clone()),
        None => crate::acme::AcmeManager::new(acme_settings(a)),
    });
    let on_demand = match (&acme, on_demand_config(config)) {
        (Some(_), Some(c)) => Some(crate::acme::OnDemand::new(
            crate::acme::OnDemandSettings::from_config(c)
                .map_err(|e| anyhow::anyhow!("[acme.on_demand] {e}"))?,
        )),
        _ => None,
    };
    let store = Arc::new(ArcSwap::new(cert_store(config, acme.clone())?));
    if let Some(od) = &on_demand {
        store.load().set_on_demand(od.clone());
    }
    let tls = htgate_server::tls::server_config_with_resolver(Arc::new(SwappableResolver(
        store.clone(),
    )))?;
    // Bind first: the sites need the bound ports (port 0 in tests), and
    // nothing is served before the sites exist.
    let mut sockets = Vec::new();
    for (addr, is_tls) in config.listeners() {
        let http3 = config.http3(addr);
        sockets.push((addr, is_tls, bind(addr, is_tls, http3, &tls).await?));
    }
    let bound: Vec<(SocketAddr, bool)> = sockets.iter().map(|(_, t, (_, b))| (*b, *t)).collect();
    let (http_port, https_port) = public_ports(&bound);
    let hosting = Arc::new(ArcSwap::from_pointee(hosting_for(
        config, http_port, https_port, &acme, &cluster,
    )?));
    let handler = Arc::new(Front {
        hosting: hosting.clone(),
    });
    let admin = match &config.file.admin {
        Some(a) => {
            let addr = *a.listen.get_ref();
            let l = htgate_telemetry::metrics::admin::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("[admin] cannot listen on {addr}: {e}"))?;
            Some((l.local_addr()?, l))
        }
        None => None,
    };
    let listeners: Vec<RunningListener> = sockets
        .into_iter()
        .map(|(addr, t, socket)| serve_on(addr, t, socket, &handler))
        .collect();

    let domains_tx = acme
        .as_ref()
        .map(|_| tokio::sync::watch::channel(store.load().automatic_domains()).0);
    let shared = Arc::new(Shared {
        config: ArcSwap::from_pointee(config.clone()),
        hosting,
        store,
        acme,
        on_demand,
        cluster: cluster.clone(),
        sync: std::sync::OnceLock::new(),
        tls,
        handler,
        admin_addr: admin.as_ref().map(|(a, _)| *a),
        listeners: tokio::sync::Mutex::new(listeners),
        domains_tx,
        tasks: Mutex::new(Vec::new()),
        reloading: tokio::sync::Mutex::new(()),
        watcher: Mutex::new(None),
    });
    let mut tasks = Vec::new();
    if let Some((_, l)) = admin {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(super::cert_metrics::ServerCollector {
            store: shared.store.clone(),
            acme: shared.acme.clone(),
        }));
        tasks.push(htgate_telemetry::metrics::admin::spawn(l, registry));
    }
    // Certificate folders are looked at periodically (uploads, deletions);
    // expiry needs no look: the resolver checks dates at every handshake.
    let every = Duration::from_secs(config.file.cert_check_seconds.max(1));
    let store = shared.store.clone();
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let s = store.load_full();
            let _ = tokio::task::spawn_blocking(move || s.refresh()).await;
        }
    }));
    if let Some(cluster) = &cluster {
        let sync = super::cluster_sync::NodeSync::new(&shared, cluster.clone());
        let _ = shared.sync.set(sync.clone());
        set_upload_hook(&shared, &shared.store.load());
        tasks.extend(crate::cluster::watcher::spawn(
            cluster.clone(),
            &super::cluster_sync::PREFIXES,
            sync,
        ));
        tracing::info!(target: "cluster", node = cluster.node(), store = %cluster.store().describe(), "cluster mode");
    }
    if let (Some(manager), Some(tx)) = (&shared.acme, &shared.domains_tx) {
        // Before the loop's first order.
        manager.set_site_profiles(site_acme_profiles(config));
        let store = shared.store.clone();
        let on_cert: Arc<dyn Fn(&str) + Send + Sync> = Arc::new(move |d: &str| {
            store.load().refresh_automatic(d);
        });
        tasks.push(manager.spawn(tx.subscribe(), on_cert));
        if let Some(od) = &shared.on_demand {
            tasks.extend(od.spawn(manager.clone(), on_demand_issued(&shared)));
        }
    }
    match super::reload::start_watcher(&shared, tokio::runtime::Handle::current()) {
        Ok(w) => {
            if let Ok(mut slot) = shared.watcher.lock() {
                *slot = Some(w);
            }
        }
        Err(e) => {
            // Without a watcher, the periodic re-check is all there is.
            let every = Duration::from_secs(config.file.reload_poll_seconds.max(1));
            tracing::warn!(target: "reload", "cannot watch files ({e}): re-checking every {}s instead", every.as_secs());
            let weak = Arc::downgrade(&shared);
            let rt = tokio::runtime::Handle::current();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    let Some(shared) = weak.upgrade() else { break };
                    let rt = rt.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        super::reload::apply(&shared, vec![crate::watch::Change::Rescan], &rt)
                    })
                    .await;
                }
            }));
        }
    }
    if let Ok(mut t) = shared.tasks.lock() {
        t.extend(tasks);
    }
    Ok(HostingServer { shared })
}

fn on_demand_config(config: &Config) -> Option<&crate::config::OnDemandConfig> {
    config
        .file
        .acme
        .as_ref()
        .and_then(|a| a.on_demand.as_ref())
        .map(|c| c.get_ref())
}

/// After an on-demand order: serve the certificate from the next handshake
/// on, and keep it renewed with the listed names.
fn on_demand_issued(shared: &Arc<Shared>) -> crate::acme::on_demand::OnIssued {
    let weak = Arc::downgrade(shared);
    Arc::new(move |domain: &str| {
        let Some(shared) = weak.upgrade() else { return };
        shared.store.load().refresh_automatic(domain);
        if let Some(tx) = &shared.domains_tx {
            tx.send_if_modified(|list| {
                let new = !list.iter().any(|d| d == domain);
                if new {
                    list.push(domain.to_string());
                }
                new
            });
        }
    })
}

fn hosting_for(
    config: &Config,
    http_port: u16,
    https_port: u16,
    acme: &Option<Arc<crate::acme::AcmeManager>>,
    cluster: &Option<Arc<crate::cluster::Cluster>>,
) -> anyhow::Result<Hosting> {
    // A cluster node answers every node's challenges, with or without
    // ACME of its own.
    let challenges = acme
        .as_ref()
        .map(|a| a.challenges())
        .or_else(|| cluster.as_ref().map(|c| c.challenges()));
    hosting(config, http_port, https_port, challenges, cluster.clone())
}

/// Tells the cluster sync about changed upload folders of `store`.
fn set_upload_hook(shared: &Arc<Shared>, store: &Arc<CertStore>) {
    let Some(sync) = shared.sync.get().cloned() else {
        return;
    };
    let rt = tokio::runtime::Handle::current();
    store.set_upload_hook(Arc::new(move |site: &str| {
        let (sync, site) = (sync.clone(), site.to_string());
        rt.spawn(async move { sync.local_upload_changed(&site).await });
    }));
}

/// The reload itself (see the module comment).
pub async fn reload(shared: &Arc<Shared>) -> Result<(), String> {
    let _one = shared.reloading.lock().await;
    let path = shared.config.load().path.clone();
    let started = std::time::Instant::now();
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(target: "reload", file = %path.display(), "configuration refused, the running one is kept:\n{e}");
            return Err(e.to_string());
        }
    };
    let config = match &shared.cluster {
        Some(cluster) => cluster.merged_config(&config),
        None => config,
    };
    let old = shared.config.load_full();
    if acme_differs(&old, &config) {
        tracing::warn!(target: "reload", "the [acme] settings changed: they take effect at the next restart");
    }
    if cluster_key(&old) != cluster_key(&config) {
        tracing::warn!(target: "reload", "the [cluster] settings changed: they take effect at the next restart");
    }
    if old.file.admin.as_ref().map(|a| *a.listen.get_ref())
        != config.file.admin.as_ref().map(|a| *a.listen.get_ref())
    {
        tracing::warn!(target: "reload", "the [admin] listener changed: it takes effect at the next restart");
    }
    let store = match cert_store(&config, shared.acme.clone()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(target: "reload", file = %path.display(), "configuration refused, the running one is kept: {e:#}");
            return Err(format!("{e:#}"));
        }
    };
    // Listeners: keep the same ones, bind the new ones first (a bind
    // failure refuses the whole reload), then close the removed ones.
    let mut listeners = shared.listeners.lock().await;
    let wanted = config.listeners();
    let mut fresh = Vec::new();
    for (addr, tls) in &wanted {
        if !listeners
            .iter()
            .any(|l| l.configured == *addr && l.tls == *tls)
        {
            match bind(*addr, *tls, config.http3(*addr), &shared.tls).await {
                Ok(socket) => fresh.push((*addr, *tls, socket)),
                Err(e) => {
                    // The sockets bound so far close when `fresh` drops.
                    tracing::error!(target: "reload", "configuration refused, the running one is kept: {e:#}");
                    return Err(format!("{e:#}"));
                }
            }
        }
    }
    let (kept, removed): (Vec<RunningListener>, Vec<RunningListener>) =
        listeners.drain(..).partition(|l| {
            wanted
                .iter()
                .any(|(a, t)| l.configured == *a && l.tls == *t)
        });
    {
        let running = shared.config.load();
        for l in &kept {
            if running.http3(l.configured) != config.http3(l.configured) {
                tracing::warn!(target: "reload", address = %l.configured, "http3/alt_svc of a running listener changed: it takes effect at the next restart (or list the listener under another address)");
            }
        }
    }
    let bound: Vec<(SocketAddr, bool)> = kept
        .iter()
        .map(|l| (l.bound, l.tls))
        .chain(fresh.iter().map(|(_, t, (_, b))| (*b, *t)))
        .collect();
    let (http_port, https_port) = public_ports(&bound);
    let hosting = match hosting_for(
        &config,
        http_port,
        https_port,
        &shared.acme,
        &shared.cluster,
    ) {
        Ok(h) => h,
        Err(e) => {
            // Nothing changed yet: put the running listeners back.
            listeners.extend(kept);
            listeners.extend(removed);
            return Err(format!("{e:#}"));
        }
    };
    set_upload_hook(shared, &store);
    if let Some(od) = &shared.on_demand {
        store.set_on_demand(od.clone());
    }
    shared.store.store(store.clone());
    shared.hosting.store(Arc::new(hosting));
    // New sockets start serving only now, with the new sites.
    listeners.extend(kept);
    listeners.extend(
        fresh
            .into_iter()
            .map(|(addr, t, socket)| serve_on(addr, t, socket, &shared.handler)),
    );
    htgate_telemetry::logs::error_log::apply(
        config
            .file
            .error_log
            .as_ref()
            .map(|p| p.get_ref().as_path()),
        config.file.log_level.as_ref().map(|l| l.get_ref().as_str()),
    );
    if let Some(manager) = &shared.acme {
        manager.set_site_profiles(site_acme_profiles(&config));
    }
    shared.config.store(Arc::new(config));
    if let Some(tx) = &shared.domains_tx {
        let _ = tx.send(store.automatic_domains());
    }
    for mut l in removed {
        tracing::info!(target: "reload", address = %l.configured, "listener removed");
        if let Some(tx) = l.shutdown.take() {
            let _ = tx.send(());
        }
    }
    tracing::info!(target: "reload", file = %path.display(), took_ms = started.elapsed().as_millis() as u64, "configuration reloaded");
    Ok(())
}

/// What identifies the cluster a node joined (spans left out).
fn cluster_key(c: &Config) -> Option<String> {
    c.file.cluster.as_ref().map(|c| {
        let c = c.get_ref();
        let etcd: Vec<&String> = c.etcd.iter().map(|e| e.get_ref()).collect();
        format!(
            "{etcd:?} {:?} {} {:?}",
            c.folder.as_ref().map(|f| f.get_ref()),
            c.prefix.get_ref(),
            c.node
        )
    })
}

fn acme_differs(a: &Config, b: &Config) -> bool {
    let key = |c: &Config| {
        c.file.acme.as_ref().map(|a| {
            (
                a.directory.clone(),
                a.profile.clone(),
                a.storage.clone(),
                a.ca_root.clone(),
                a.contact.clone(),
                a.on_demand.as_ref().map(|o| {
                    let o = o.get_ref();
                    format!(
                        "{} {} {} {} {} {} {} {} {:?}",
                        o.ask.get_ref(),
                        o.ask_timeout_ms,
                        o.max_orders,
                        o.max_orders_per_site,
                        o.rate_window_seconds,
                        o.deny_cache_seconds,
                        o.max_pending,
                        o.max_pending_per_site,
                        o.public_addresses
                            .iter()
                            .map(|a| a.get_ref())
                            .collect::<Vec<_>>()
                    )
                }),
            )
        })
    };
    key(a) != key(b)
}
