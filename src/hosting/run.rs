//! Starting config mode: certificates, listeners, sites, background tasks.

use super::certs::{CertStore, Served, SiteCertConfig};
use super::{Front, HostedSite, Hosting};
use crate::config::{ClientHttpsHeaders, Config};
use crate::engine::site::Site;
use crate::server::listener::{serve, Listener};
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A running config-mode server.
pub struct HostingServer {
    /// Bound addresses, `true` for TLS.
    pub addrs: Vec<(SocketAddr, bool)>,
    pub store: Arc<CertStore>,
    pub hosting: Arc<ArcSwap<Hosting>>,
    pub acme: Option<Arc<crate::acme::AcmeManager>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    join: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl HostingServer {
    /// The first bound address of the given kind.
    pub fn addr(&self, tls: bool) -> Option<SocketAddr> {
        self.addrs.iter().find(|(_, t)| *t == tls).map(|(a, _)| *a)
    }

    /// Stops accepting, drains in-flight requests, stops background work.
    pub async fn shutdown(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(join) = self.join.take() {
            let _ = join.await;
        }
    }
}

/// The shared certificate: the configured one, else a self-signed one made
/// in memory (said loudly: clients without SNI will see a warning).
fn default_certificate(config: &Config) -> anyhow::Result<Arc<Served>> {
    let (chain, key) = match &config.file.default_certificate {
        Some(c) => crate::tls::load_pem_files(&c.cert, &c.key)
            .map_err(|e| anyhow::anyhow!("default_certificate: {e}"))?,
        None => {
            tracing::warn!("no default_certificate configured: clients without SNI and names without a certificate get a self-signed one made in memory");
            crate::tls::self_signed(&["localhost".to_string()])?
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
    }
}

/// What each site contributes to certificate selection.
pub fn site_cert_configs(config: &Config) -> Vec<SiteCertConfig> {
    config
        .file
        .site
        .iter()
        .map(|s| SiteCertConfig {
            name: s.name.get_ref().clone(),
            domains: s.domains.iter().map(|d| d.get_ref().clone()).collect(),
            upload_dir: config.upload_dir(s),
            acme: s.acme,
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
) -> anyhow::Result<Hosting> {
    let mut sites = Vec::new();
    let mut map = routing::DomainMap::default();
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
        let mut site = Site::new(s.root.get_ref(), names);
        site.http_port = http_port;
        site.https_port = https_port;
        site.pass_client_https_headers =
            config.file.client_https_headers == ClientHttpsHeaders::Pass;
        let hsts = match &s.hsts {
            Some(h) => Some(
                http::HeaderValue::from_str(&h.get_ref().header_value())
                    .map_err(|e| anyhow::anyhow!("hsts: {e}"))?,
            ),
            None => None,
        };
        sites.push(Arc::new(HostedSite {
            name: s.name.get_ref().clone(),
            site: Arc::new(site),
            hsts,
            force_https: s.force_https,
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
        https_port,
    })
}

use super::routing;

/// Starts config mode on the current tokio runtime.
pub async fn start(config: &Config) -> anyhow::Result<HostingServer> {
    let acme = config
        .file
        .acme
        .as_ref()
        .map(|a| crate::acme::AcmeManager::new(acme_settings(a)));
    let store = cert_store(config, acme.clone())?;
    let tls = crate::tls::server_config_with_resolver(Arc::new(super::certs::SniResolver::new(
        store.clone(),
    )))?;
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for (addr, is_tls) in config.listeners() {
        let l = Listener::bind(addr, is_tls.then(|| tls.clone()))
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        addrs.push((l.local_addr()?, is_tls));
        listeners.push(l);
    }
    let port_of = |tls: bool, default: u16| {
        addrs
            .iter()
            .find(|(_, t)| *t == tls)
            .map(|(a, _)| a.port())
            .unwrap_or(default)
    };
    let hosting = Arc::new(ArcSwap::from_pointee(hosting(
        config,
        port_of(false, 80),
        port_of(true, 443),
        acme.as_ref().map(|a| a.challenges()),
    )?));
    let handler = Arc::new(Front {
        hosting: hosting.clone(),
    });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let join = tokio::spawn(serve(listeners, handler, async move {
        let _ = rx.await;
    }));
    let mut tasks = Vec::new();
    // Certificate files are looked at periodically: uploads, deletions.
    // Expiry needs no look: the resolver checks dates at every handshake.
    let every = Duration::from_secs(config.file.cert_check_seconds.max(1));
    let refresher = store.clone();
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let s = refresher.clone();
            let _ = tokio::task::spawn_blocking(move || s.refresh()).await;
        }
    }));
    if let Some(manager) = &acme {
        let (_domains_tx, domains_rx) = tokio::sync::watch::channel(store.automatic_domains());
        let s = store.clone();
        let on_cert: Arc<dyn Fn(&str) + Send + Sync> = Arc::new(move |d: &str| {
            s.refresh_automatic(d);
        });
        tasks.push(manager.spawn(domains_rx, on_cert));
        // The sender lives as long as the task list: a reload (hot-reload
        // issue) sends new domain lists through it.
        tasks.push(tokio::spawn(async move {
            let _keep = _domains_tx;
            std::future::pending::<()>().await
        }));
    }
    Ok(HostingServer {
        addrs,
        store,
        hosting,
        acme,
        shutdown: Some(tx),
        join: Some(join),
        tasks,
    })
}
