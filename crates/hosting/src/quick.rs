//! Quick mode: one document root, one plain and one TLS listener, no config
//! file.  Used by `htgate serve --root`, by the conformance oracle and by the
//! in-process conformance tests.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Options of quick mode (`htgate serve --root DIR ...`).
#[derive(Debug, Clone)]
pub struct QuickOptions {
    /// The document root.
    pub root: PathBuf,
    /// Plain HTTP listen address (port 0: an ephemeral port).
    pub http: SocketAddr,
    /// TLS listen address (port 0: an ephemeral port).
    pub https: SocketAddr,
    /// PEM certificate chain; without it a self-signed one is made.
    pub cert: Option<PathBuf>,
    /// PEM private key (with `cert`).
    pub key: Option<PathBuf>,
    /// The virtual host's ServerName, then its ServerAliases.
    pub server_names: Vec<String>,
    /// Send X-Debug-Final-Uri / X-Debug-Final-Query on 2xx answers.
    pub debug_headers: bool,
    /// Treat client-sent `HTTPS`, `X-Forwarded-Proto` and `Forwarded`
    /// headers as ordinary headers (Apache's raw behaviour).
    pub pass_client_https_headers: bool,
    /// Run `.php` files through this PHP-FPM socket (`/run/php/x.sock` or
    /// `host:port`); without it they are plain files, as in an Apache
    /// without PHP (the conformance environment).
    pub php_fpm: Option<String>,
    /// The extension → type table: `None` is the system's (Debian's
    /// mime.types), `Some("reference")` the conformance oracle's 16 types,
    /// anything else a `mime.types` file to read.
    pub mime_types: Option<String>,
    /// The PHP body and fair-sharing settings (`--php-*` flags).
    pub php: htgate_engine::php_gate::PhpSettings,
    /// Also serve HTTP/3 on the TLS address (UDP) and advertise it with
    /// `Alt-Svc` (`--http3`).
    pub http3: bool,
}

impl QuickOptions {
    /// Quick mode on `root` with the defaults of `htgate serve --root`
    /// except the addresses: ephemeral loopback ports, ServerName
    /// `localhost`, a self-signed certificate made in memory, client HTTPS
    /// headers stripped, no PHP, the system's MIME table, no HTTP/3.
    pub fn new(root: PathBuf) -> QuickOptions {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        QuickOptions {
            root,
            http: any,
            https: any,
            cert: None,
            key: None,
            server_names: vec!["localhost".into()],
            debug_headers: false,
            pass_client_https_headers: false,
            php_fpm: None,
            mime_types: None,
            php: Default::default(),
            http3: false,
        }
    }
}

/// A server started by [`start`], running on the current tokio runtime.
pub struct RunningServer {
    /// The bound plain HTTP address.
    pub http_addr: SocketAddr,
    /// The bound TLS address.
    pub https_addr: SocketAddr,
    /// The bound HTTP/3 (UDP) address, with `http3`.
    pub http3_addr: Option<SocketAddr>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    join: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Sees `.htaccess` edits as the kernel reports them; stops with the
    /// server.
    _watcher: Option<crate::watch::Watcher>,
}

impl RunningServer {
    /// Stops accepting, drains in-flight requests and waits for the end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(join) = self.join.take() {
            let _ = join.await;
        }
    }
}

/// Builds the site of quick mode.
pub fn site(opts: &QuickOptions) -> anyhow::Result<htgate_engine::site::Site> {
    let root = std::fs::canonicalize(&opts.root)
        .map_err(|e| anyhow::anyhow!("document root `{}`: {e}", opts.root.display()))?;
    if !root.is_dir() {
        anyhow::bail!("document root `{}` is not a directory", root.display());
    }
    let mut site = htgate_engine::site::Site::new(&root, opts.server_names.clone());
    site.debug_headers = opts.debug_headers;
    site.pass_client_https_headers = opts.pass_client_https_headers;
    match opts.mime_types.as_deref() {
        None => {}
        Some("reference") => site.mime = htgate_content::mime::MimeTable::reference(),
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("--mime-types `{file}`: {e}"))?;
            site.mime = htgate_content::mime::MimeTable::from_mime_types(&text);
        }
    }
    // Apache's default `TraceEnable on` (the reference environment's).
    site.trace_enable = true;
    if let Some(fpm) = &opts.php_fpm {
        let upstream =
            htgate_fastcgi::Upstream::parse(fpm).map_err(|e| anyhow::anyhow!("--php-fpm: {e}"))?;
        let name = opts
            .server_names
            .first()
            .cloned()
            .unwrap_or_else(|| "localhost".into());
        site.enable_php(htgate_engine::site::PhpSite::new(
            std::sync::Arc::new(name),
            upstream,
            htgate_fastcgi::Limits::default().response_timeout,
            &opts.php,
            true,
        ));
    }
    Ok(site)
}

/// The TLS configuration of quick mode: the given PEM files, or a
/// self-signed certificate for the server names made in memory.
pub(crate) fn tls_config(
    opts: &QuickOptions,
) -> anyhow::Result<std::sync::Arc<rustls::ServerConfig>> {
    let (certs, key) = match (&opts.cert, &opts.key) {
        (Some(c), Some(k)) => htgate_server::tls::load_pem_files(c, k)?,
        (None, None) => {
            tracing::info!(
                "no --cert given: using a self-signed certificate for {:?} made in memory",
                opts.server_names
            );
            htgate_server::tls::self_signed(&opts.server_names)?
        }
        _ => anyhow::bail!("--cert and --key go together"),
    };
    Ok(htgate_server::tls::server_config(certs, key)?)
}

/// Binds both listeners and starts serving in the background.
pub async fn start(opts: QuickOptions) -> anyhow::Result<RunningServer> {
    start_logged(opts, None).await
}

/// [`start`] with an access log in Combined Log Format
/// (`--access-log FILE`).
pub async fn start_logged(
    opts: QuickOptions,
    access_log: Option<PathBuf>,
) -> anyhow::Result<RunningServer> {
    use htgate_server::listener::{serve, Listener};
    let site = std::sync::Arc::new(site(&opts)?);
    let tls = tls_config(&opts)?;
    let watcher = watch(&site);
    let http = Listener::bind(opts.http, None)
        .await
        .map_err(|e| htgate_server::listener::bind_error(opts.http, &e, "--http ADDR"))?;
    let mut https = Listener::bind(opts.https, Some(tls))
        .await
        .map_err(|e| htgate_server::listener::bind_error(opts.https, &e, "--https ADDR"))?;
    let http_addr = http.local_addr()?;
    let https_addr = https.local_addr()?;
    if opts.http3 {
        https = https.with_http3(true).map_err(|e| {
            let err = htgate_server::listener::bind_error(https_addr, &e, "--https ADDR");
            anyhow::anyhow!("--http3 (UDP): {err}")
        })?;
    }
    let http3_addr = https.http3_addr();
    let engine: std::sync::Arc<dyn htgate_server::Handler> =
        std::sync::Arc::new(htgate_server::site_handler::Engine { site });
    let handler: std::sync::Arc<dyn htgate_server::Handler> = match access_log {
        Some(path) => {
            htgate_telemetry::logs::writer::check_writable(&path)
                .map_err(|e| anyhow::anyhow!("--access-log {}: {e}", path.display()))?;
            let target = htgate_server::access_log::AccessTarget {
                path: std::sync::Arc::from(path.as_path()),
                vhost: None,
            };
            let name = opts
                .server_names
                .first()
                .map_or("localhost", |n| n.as_str());
            std::sync::Arc::new(htgate_server::access_log::AccessLogged::single(
                engine,
                name,
                Some(target),
            ))
        }
        None => engine,
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let join = tokio::spawn(serve(vec![http, https], handler, async move {
        let _ = rx.await;
    }));
    Ok(RunningServer {
        http_addr,
        https_addr,
        http3_addr,
        shutdown: Some(tx),
        join: Some(join),
        _watcher: watcher,
    })
}

/// A burst of events for one file within this window is one change (as
/// in config mode: it is added to the latency of every edit).
const DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(5);

/// Quick mode's watcher on the document root: an edited `.htaccess` is
/// compiled again as soon as the kernel reports it.  Quick mode also
/// stats each `.htaccess` again once its look-up is a second old
/// ([`htgate_engine::site::RECHECK`]): the net under lost events, a full
/// inotify watch table, or a filesystem without events.
fn watch(site: &std::sync::Arc<htgate_engine::site::Site>) -> Option<crate::watch::Watcher> {
    let spec = crate::watch::WatchSpec {
        trees: vec![PathBuf::from(&site.docroot)],
        files: Vec::new(),
        dirs: Vec::new(),
        debounce: DEBOUNCE,
        poll_interval: None,
        use_events: true,
    };
    let weak = std::sync::Arc::downgrade(site);
    let sink = Box::new(move |changes: Vec<crate::watch::Change>| {
        if let Some(site) = weak.upgrade() {
            for change in &changes {
                site.apply_change(change);
            }
        }
    });
    match crate::watch::Watcher::start(spec, sink) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(
                "cannot watch {} for edits ({e}): .htaccess edits are seen within {} s",
                site.docroot,
                htgate_engine::site::RECHECK.as_secs()
            );
            None
        }
    }
}
