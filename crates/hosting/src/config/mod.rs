//! `htgate.toml`: the hosting configuration (listeners, the shared default
//! certificate, ACME settings and the sites).
//!
//! Parsing is serde + toml with `deny_unknown_fields`, so a misspelt key is
//! an error, not a silently ignored setting.  Values that serde cannot judge
//! (domain syntax, duplicate domains, missing roots) are checked afterwards
//! against the spans toml recorded, so every error names `file:line:col`.

mod on_demand;
mod schema;

pub use on_demand::AskUrl;

pub use schema::*;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// One problem in a configuration file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// All problems of one file (at least one).
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before
        .get(line_start..)
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// A checked configuration: the parsed file plus facts derived from it.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (relative paths inside it are resolved
    /// against its folder).
    pub path: PathBuf,
    pub file: ConfigFile,
}

impl Config {
    /// Reads, parses and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let source = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: 1,
                col: 1,
                message: format!("cannot read the configuration: {e}"),
            }])
        })?;
        Config::parse(path, &source)
    }

    /// Parses and checks `source` as if read from `path`.
    pub fn parse(path: &Path, source: &str) -> Result<Config, ConfigErrors> {
        let base = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // Absolute paths in logs and `cert` output, whatever the cwd.
        let base = std::fs::canonicalize(&base).unwrap_or(base);
        let err_at = |offset: usize, message: String| {
            let (line, col) = line_col(source, offset);
            ConfigError {
                file: path.to_path_buf(),
                line,
                col,
                message,
            }
        };
        let mut file: ConfigFile = toml::from_str(source).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            ConfigErrors(vec![err_at(offset, e.message().trim().to_string())])
        })?;
        let mut errors = Vec::new();
        check(&mut file, &base, &mut |offset, message| {
            errors.push(err_at(offset, message))
        });
        if errors.is_empty() {
            Ok(Config {
                path: path.to_path_buf(),
                file,
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Whether the listener on `addr` also serves HTTP/3: `Some(advertise
    /// with Alt-Svc)`.
    pub fn http3(&self, addr: SocketAddr) -> Option<bool> {
        self.file
            .listen
            .iter()
            .find(|l| {
                *l.address.get_ref() == addr
                    && l.tls
                    && l.http3.as_ref().is_some_and(|h| *h.get_ref())
            })
            .map(|l| l.alt_svc)
    }

    /// The plain and TLS listen addresses.
    pub fn listeners(&self) -> Vec<(SocketAddr, bool)> {
        self.file
            .listen
            .iter()
            .map(|l| (*l.address.get_ref(), l.tls))
            .collect()
    }

    /// The PHP settings of `site`: its own keys, else the top-level ones,
    /// else the defaults.
    pub fn php_settings(&self, site: &SiteConfig) -> htgate_engine::php_gate::PhpSettings {
        let top = &self.file;
        let d = htgate_engine::php_gate::PhpSettings::default();
        let num = |own: &Option<toml::Spanned<u64>>, top: &Option<toml::Spanned<u64>>| {
            own.as_ref().or(top.as_ref()).map(|v| *v.get_ref())
        };
        let secs = |n: Option<u64>, default: std::time::Duration| {
            n.map_or(default, std::time::Duration::from_secs)
        };
        let size = |n: Option<u64>, default: usize| {
            n.map_or(default, |n| usize::try_from(n).unwrap_or(usize::MAX))
        };
        htgate_engine::php_gate::PhpSettings {
            request_buffering: site
                .php_request_buffering
                .or(top.php_request_buffering)
                .unwrap_or(d.request_buffering),
            body_memory_bytes: size(
                top.php_body_memory_bytes.as_ref().map(|v| *v.get_ref()),
                d.body_memory_bytes,
            ),
            body_timeout: secs(
                num(
                    &site.php_body_timeout_seconds,
                    &top.php_body_timeout_seconds,
                ),
                d.body_timeout,
            ),
            body_min_rate: num(&site.php_body_min_rate, &top.php_body_min_rate)
                .unwrap_or(d.body_min_rate),
            max_concurrent: size(
                num(&site.php_max_concurrent, &top.php_max_concurrent),
                d.max_concurrent,
            ),
            queue_length: size(
                num(&site.php_queue_length, &top.php_queue_length),
                d.queue_length,
            ),
            queue_timeout: secs(
                num(
                    &site.php_queue_timeout_seconds,
                    &top.php_queue_timeout_seconds,
                ),
                d.queue_timeout,
            ),
        }
    }

    /// The folder an uploaded certificate of `site` lives in.
    pub fn upload_dir(&self, site: &SiteConfig) -> Option<PathBuf> {
        if let Some(c) = &site.certificate {
            return Some(c.dir.clone());
        }
        self.file
            .certificates_dir
            .as_ref()
            .map(|d| d.join(site.name.get_ref()))
    }

    pub fn site(&self, name: &str) -> Option<&SiteConfig> {
        self.file.site.iter().find(|s| s.name.get_ref() == name)
    }
}

/// Makes `p` absolute against the configuration file's folder.
fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Whether `name` is a host name htgate can route and certify: LDH labels,
/// optionally one leading `*.` label, at least two labels for a wildcard.
pub(crate) fn check_domain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a domain cannot be empty".into());
    }
    if name.len() > 253 {
        return Err(format!("`{name}` is longer than 253 characters"));
    }
    if name != name.to_ascii_lowercase() {
        return Err(format!(
            "`{name}` has upper-case letters; write domains in lower case (`{}`)",
            name.to_ascii_lowercase()
        ));
    }
    let (wild, rest) = match name.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    if wild && !rest.contains('.') {
        return Err(format!(
            "`{name}`: a wildcard needs at least two labels after `*.` (like `*.example.com`)"
        ));
    }
    for label in rest.split('.') {
        if label.is_empty() {
            return Err(format!(
                "`{name}` has an empty label (two dots or a trailing dot)"
            ));
        }
        if label.len() > 63 {
            return Err(format!(
                "`{name}`: the label `{label}` is longer than 63 characters"
            ));
        }
        if label.contains('*') {
            return Err(format!(
                "`{name}`: `*` is only allowed as the whole first label (`*.example.com`)"
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "`{name}`: only letters, digits, `-` and `.` are allowed (write internationalised names in their xn-- form)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "`{name}`: the label `{label}` starts or ends with `-`"
            ));
        }
    }
    Ok(())
}

/// Makes a log file's path absolute and checks that it can be one: its
/// folder exists (htgate creates files, not folders) and it is not a folder.
fn check_log_path(
    base: &Path,
    key: &str,
    path: &mut toml::Spanned<PathBuf>,
    report: &mut dyn FnMut(usize, String),
) {
    let at = path.span().start;
    let abs = resolve(base, path.get_ref());
    match abs.parent() {
        Some(dir) if dir.is_dir() => {}
        Some(dir) => report(
            at,
            format!(
                "{key} `{}`: the folder `{}` does not exist (create it; htgate creates only the file)",
                abs.display(),
                dir.display()
            ),
        ),
        None => report(at, format!("{key} `{}` is not a file path", abs.display())),
    }
    if abs.is_dir() {
        report(
            at,
            format!("{key} `{}` is a folder, not a file", abs.display()),
        );
    }
    *path.get_mut() = abs;
}

/// The checks serde cannot make.  `report(offset, message)` is called for
/// every problem; paths are made absolute on the way.
fn check(file: &mut ConfigFile, base: &Path, report: &mut dyn FnMut(usize, String)) {
    if file.listen.is_empty() {
        report(
            0,
            "no [[listen]] address: add at least one, e.g. `[[listen]] address = \"0.0.0.0:80\"`"
                .into(),
        );
    }
    let mut seen_addr: HashMap<SocketAddr, ()> = HashMap::new();
    for l in &file.listen {
        // Port 0 (any free port) may appear several times.
        if l.address.get_ref().port() != 0 && seen_addr.insert(*l.address.get_ref(), ()).is_some() {
            report(
                l.address.span().start,
                format!("{} is listed twice", l.address.get_ref()),
            );
        }
        if let Some(h3) = l.http3.as_ref().filter(|h| *h.get_ref() && !l.tls) {
            report(
                h3.span().start,
                format!(
                    "http3 = true on {}, a listener without TLS: HTTP/3 runs over QUIC, which is always encrypted (add `tls = true`)",
                    l.address.get_ref()
                ),
            );
        }
    }
    if let Some(dir) = &mut file.certificates_dir {
        *dir = resolve(base, dir);
    }
    for r in &mut file.extra_ca_roots {
        *r = resolve(base, r);
    }
    if let Some(p) = &mut file.access_log {
        check_log_path(base, "access_log", p, report);
    }
    check_in_range(
        &file.php_body_memory_bytes,
        "php_body_memory_bytes",
        0..=PHP_BODY_MEMORY_MAX,
        report,
    );
    check_php_keys(
        [
            &file.php_body_timeout_seconds,
            &file.php_body_min_rate,
            &file.php_max_concurrent,
            &file.php_queue_length,
            &file.php_queue_timeout_seconds,
        ],
        report,
    );
    if let Some(p) = &mut file.error_log {
        check_log_path(base, "error_log", p, report);
    }
    if let Some(level) = &file.log_level {
        if let Err(m) = htgate_telemetry::logs::error_log::check_level(level.get_ref()) {
            report(level.span().start, m);
        }
    }
    if let Some(admin) = &file.admin {
        let addr = *admin.listen.get_ref();
        if addr.port() != 0 && file.listen.iter().any(|l| *l.address.get_ref() == addr) {
            report(
                admin.listen.span().start,
                format!("[admin] listen {addr} is also a [[listen]] address"),
            );
        }
    }
    if let Some(c) = &mut file.default_certificate {
        c.cert = resolve(base, &c.cert);
        c.key = resolve(base, &c.key);
    }
    if let Some(a) = &mut file.acme {
        a.storage = resolve(base, &a.storage);
        if let Some(r) = &mut a.ca_root {
            *r = resolve(base, r);
        }
        if !a.directory.starts_with("https://") && !a.directory.starts_with("http://") {
            report(
                0,
                format!("[acme] directory `{}` is not an http(s) URL", a.directory),
            );
        }
    }
    if let Some(c) = &mut file.cluster {
        check_cluster(c, base, report);
    }
    if let Some(l) = &file.limits {
        if let Err(m) = l.get_ref().check() {
            report(l.span().start, format!("[limits] {m}"));
        }
    }
    if file.site.is_empty() {
        report(0, "no [[site]]: add at least one site".into());
    }
    check_acme_profiles(file, report);
    let mut names: HashMap<String, ()> = HashMap::new();
    let mut domains: HashMap<String, String> = HashMap::new();
    check_sites(&mut file.site, base, &mut names, &mut domains, report);
    on_demand::check(
        file.acme.as_ref(),
        &file.site,
        &domains,
        &mut on_demand::Taken::default(),
        report,
    );
    for proxy in &file.trusted_proxies {
        if proxy.get_ref().parse::<ipnet::IpNet>().is_err()
            && proxy.get_ref().parse::<std::net::IpAddr>().is_err()
        {
            report(
                proxy.span().start,
                format!(
                    "`{}` is not an IP address or a network like 10.0.0.0/8",
                    proxy.get_ref()
                ),
            );
        }
    }
}

/// The checks of `[[site]]` tables; `names` and `domains` hold the sites
/// seen so far (the file's, when checking the cluster's).
/// ACME profile names: whether the CA lists them is only known when it is
/// asked (the first order says so); what can be told here is a name that
/// cannot be one, or one on a site that gets no automatic certificates.
fn check_acme_profiles(file: &ConfigFile, report: &mut dyn FnMut(usize, String)) {
    let bad =
        |p: &str| p.trim().is_empty() || p.chars().any(|c| c.is_whitespace() || c.is_control());
    if let Some(p) = file.acme.as_ref().and_then(|a| a.profile.as_deref()) {
        if bad(p) {
            report(0, format!("[acme] profile {p:?} is not a profile name"));
        }
    }
    for site in &file.site {
        let Some(p) = site.acme_profile.as_deref() else {
            continue;
        };
        let at = site.name.span().start;
        let name = site.name.get_ref();
        if bad(p) {
            report(
                at,
                format!("site `{name}`: acme_profile {p:?} is not a profile name"),
            );
        } else if !site.acme || file.acme.is_none() {
            report(
                at,
                format!("site `{name}`: acme_profile is set but the site gets no automatic certificates (acme = false or no [acme])"),
            );
        }
    }
}

fn check_sites(
    sites: &mut [SiteConfig],
    base: &Path,
    names: &mut HashMap<String, ()>,
    domains: &mut HashMap<String, String>,
    report: &mut dyn FnMut(usize, String),
) {
    for site in sites.iter_mut() {
        let name = site.name.get_ref().clone();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            || name.starts_with('.')
        {
            report(
                site.name.span().start,
                format!(
                    "site name `{name}` must be letters, digits, `-`, `_` or `.` (it names a folder)"
                ),
            );
        }
        if names.insert(name.clone(), ()).is_some() {
            report(
                site.name.span().start,
                format!("site `{name}` is defined twice"),
            );
        }
        if site.domains.is_empty() {
            report(
                site.name.span().start,
                format!("site `{name}` has no domains"),
            );
        }
        for d in &site.domains {
            if let Err(m) = check_domain(d.get_ref()) {
                report(d.span().start, m);
            } else if let Some(other) = domains.insert(d.get_ref().clone(), name.clone()) {
                report(
                    d.span().start,
                    format!("domain `{}` belongs to site `{other}` already", d.get_ref()),
                );
            }
        }
        let root = resolve(base, site.root.get_ref());
        match std::fs::metadata(&root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => report(
                site.root.span().start,
                format!("root `{}` is not a directory", root.display()),
            ),
            Err(e) => report(
                site.root.span().start,
                format!("root `{}`: {e}", root.display()),
            ),
        }
        *site.root.get_mut() = root;
        for p in &mut site.extra_paths {
            *p = resolve(base, p);
        }
        if let Some(l) = &site.limits {
            if let Err(m) = l.get_ref().check() {
                report(l.span().start, format!("site `{name}`: limits: {m}"));
            }
        }
        if let Some(fpm) = &mut site.php_fpm {
            match htgate_fastcgi::Upstream::parse(fpm.get_ref()) {
                Ok(htgate_fastcgi::Upstream::Unix(path)) => {
                    // relative socket paths are the config file's, as roots are
                    *fpm.get_mut() = resolve(base, &path).to_string_lossy().into_owned();
                }
                Ok(_) => {}
                Err(m) => report(fpm.span().start, format!("php_fpm: {m}")),
            }
        }
        check_php_keys(
            [
                &site.php_body_timeout_seconds,
                &site.php_body_min_rate,
                &site.php_max_concurrent,
                &site.php_queue_length,
                &site.php_queue_timeout_seconds,
            ],
            report,
        );
        if site.php_timeout_seconds == 0 {
            report(
                site.name.span().start,
                format!("site `{name}`: php_timeout_seconds must be at least 1"),
            );
        }
        if let Some(c) = &mut site.certificate {
            c.dir = resolve(base, &c.dir);
        }
        if let Some(p) = &mut site.access_log {
            check_log_path(base, "access_log", p, report);
        }
        if let Some(hs) = &site.hsts {
            let h = hs.get_ref();
            let at = hs.span().start;
            if h.max_age == 0 && (h.include_subdomains || h.preload) {
                report(
                    at,
                    format!("site `{name}`: hsts max_age 0 removes HSTS; include_subdomains and preload need a max_age"),
                );
            }
            if h.preload && (h.max_age < 31_536_000 || !h.include_subdomains) {
                report(
                    at,
                    format!("site `{name}`: hsts preload needs max_age >= 31536000 and include_subdomains = true (the preload list's rules)"),
                );
            }
        }
    }
}

/// The largest `php_body_memory_bytes`: what thousands of bodies in
/// memory at once can afford.
const PHP_BODY_MEMORY_MAX: u64 = 16 << 20;

/// The ranges of the PHP keys (top level or site), in the order
/// `php_body_timeout_seconds`, `php_body_min_rate`, `php_max_concurrent`,
/// `php_queue_length`, `php_queue_timeout_seconds`.
fn check_php_keys(keys: [&Option<toml::Spanned<u64>>; 5], report: &mut dyn FnMut(usize, String)) {
    let [body_timeout, min_rate, max_concurrent, queue_length, queue_timeout] = keys;
    check_in_range(body_timeout, "php_body_timeout_seconds", 1..=3600, report);
    check_in_range(min_rate, "php_body_min_rate", 0..=1 << 30, report);
    check_in_range(max_concurrent, "php_max_concurrent", 1..=100_000, report);
    check_in_range(queue_length, "php_queue_length", 0..=1_000_000, report);
    check_in_range(queue_timeout, "php_queue_timeout_seconds", 1..=600, report);
}

fn check_in_range(
    value: &Option<toml::Spanned<u64>>,
    key: &str,
    range: std::ops::RangeInclusive<u64>,
    report: &mut dyn FnMut(usize, String),
) {
    if let Some(v) = value {
        if !range.contains(v.get_ref()) {
            report(
                v.span().start,
                format!(
                    "{key} = {} is out of range ({} to {})",
                    v.get_ref(),
                    range.start(),
                    range.end()
                ),
            );
        }
    }
}

/// The checks of `[cluster]`: one back end, well-formed endpoints, and the
/// files it names made absolute.
fn check_cluster(
    c: &mut toml::Spanned<ClusterConfig>,
    base: &Path,
    report: &mut dyn FnMut(usize, String),
) {
    let at = c.span().start;
    let c = c.get_mut();
    match (c.etcd.is_empty(), &c.folder) {
        (true, None) => report(
            at,
            "[cluster] needs a store: `etcd = [\"http://127.0.0.1:2379\"]` or `folder = \"/srv/htgate-cluster\"`".into(),
        ),
        (false, Some(f)) => report(
            f.span().start,
            "[cluster] has both `etcd` and `folder`: choose one store".into(),
        ),
        _ => {}
    }
    for e in &c.etcd {
        let url = e.get_ref();
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        let host_missing = match rest {
            Some(r) => r.trim_end_matches('/').is_empty() || r.contains(char::is_whitespace),
            None => true,
        };
        if host_missing {
            report(
                e.span().start,
                format!("[cluster] etcd endpoint `{url}` is not a URL like `http://10.0.0.5:2379`"),
            );
        }
    }
    if !c.etcd.is_empty() && !cfg!(feature = "etcd") {
        report(
            c.etcd[0].span().start,
            "[cluster] etcd: this htgate was built without etcd support; build it with `cargo build --release --features etcd` (needs protoc: apt-get install protobuf-compiler)".into(),
        );
    }
    if let Some(f) = &mut c.folder {
        *f.get_mut() = resolve(base, f.get_ref());
    }
    let prefix = c.prefix.get_ref();
    if !prefix.starts_with('/') || !prefix.ends_with('/') || prefix.contains(char::is_whitespace) {
        report(
            c.prefix.span().start,
            format!("[cluster] prefix `{prefix}` must start and end with `/` (like `/htgate/`)"),
        );
    }
    if c.timeout_ms == 0 {
        report(at, "[cluster] timeout_ms must be at least 1".into());
    }
    if c.lock_ttl_seconds < 2 {
        report(at, "[cluster] lock_ttl_seconds must be at least 2".into());
    }
    if c.username.is_some() != c.password_file.is_some() {
        report(
            at,
            "[cluster] username and password_file go together".into(),
        );
    }
    if c.client_cert.is_some() != c.client_key.is_some() {
        report(
            at,
            "[cluster] client_cert and client_key go together".into(),
        );
    }
    for p in [
        &mut c.cache,
        &mut c.password_file,
        &mut c.ca,
        &mut c.client_cert,
        &mut c.client_key,
    ]
    .into_iter()
    .flatten()
    {
        *p = resolve(base, p);
    }
}

impl Config {
    /// Adds the sites of a cluster-store document (`origin` names it in
    /// errors, as `etcd:/htgate/sites/blog:3:1`).  The document is checked
    /// as the file's sites are, and may not reuse a site name or a domain
    /// of the file or of a document added before: on any error nothing of
    /// it is added.
    pub(crate) fn add_store_sites(&mut self, origin: &str, text: &str) -> Result<(), ConfigErrors> {
        let origin_path = PathBuf::from(origin);
        let err_at = |offset: usize, message: String| {
            let (line, col) = line_col(text, offset);
            ConfigError {
                file: origin_path.clone(),
                line,
                col,
                message,
            }
        };
        let mut doc: SitesDocument = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            ConfigErrors(vec![err_at(offset, e.message().trim().to_string())])
        })?;
        let base = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let base = std::fs::canonicalize(&base).unwrap_or(base);
        let mut names: HashMap<String, ()> = HashMap::new();
        let mut domains: HashMap<String, String> = HashMap::new();
        for site in &self.file.site {
            names.insert(site.name.get_ref().clone(), ());
            for d in &site.domains {
                domains.insert(d.get_ref().clone(), site.name.get_ref().clone());
            }
        }
        let mut errors = Vec::new();
        if doc.site.is_empty() {
            errors.push(err_at(0, "no [[site]] in this document".into()));
        }
        check_sites(
            &mut doc.site,
            &base,
            &mut names,
            &mut domains,
            &mut |o, m| errors.push(err_at(o, m)),
        );
        // The file's own patterns and catch-all are taken (they were
        // checked with the file).
        on_demand::check(
            self.file.acme.as_ref(),
            &doc.site,
            &domains,
            &mut on_demand::Taken::of(&self.file.site),
            &mut |o, m| errors.push(err_at(o, m)),
        );
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        self.file.site.extend(doc.site);
        Ok(())
    }
}

#[cfg(test)]
mod on_demand_tests;
#[cfg(test)]
mod tests;
