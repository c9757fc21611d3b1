//! One request's life, as Apache's `ap_process_request_internal` and the
//! handler phase run it: URL parsing and normalisation, the directory walk
//! (reading every `.htaccess` on the way), `<Files>` and `<If>`, SetEnvIf,
//! access control, content types, the fixups (mod_rewrite first, then
//! mod_ssl, mod_alias, mod_env, mod_dir last), internal redirects and
//! sub-requests.  `respond` turns the outcome into an HTTP response.

use super::config::{FilesMatcher, Merged, OPT_SYM_LINKS, OPT_SYM_OWNER};
use super::site::{Htaccess, Site};
use super::stat_cache::PathStat;
use super::trace::TraceEvent;
use htgate_syntax::expr;
use htgate_util::escape;
use http::HeaderMap;
use std::fs::Metadata;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

/// `LimitInternalRecursion` (internal redirects and nested sub-requests).
pub const MAX_RECURSION: u32 = 10;
/// `LimitRequestLine` default: mod_rewrite refuses filenames longer than
/// twice this (SEMANTICS F13).
pub(crate) const LIMIT_REQUEST_LINE: usize = 8190;

/// What the file a request maps to is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Missing,
    File,
    Dir,
    Other,
}

/// Everything that is shared by a request, its internal redirects and its
/// sub-requests: the connection, the client's request, the site.
pub struct Main<'a> {
    pub site: &'a Site,
    pub method: String,
    pub protocol: String,
    /// The request line as received (`THE_REQUEST`).
    pub the_request: String,
    /// The request's headers: borrowed from the request head, copied only
    /// when a rule changes them (`RequestHeader`, the HTTPS claims).
    pub headers_in: std::borrow::Cow<'a, HeaderMap>,
    pub tls: bool,
    pub remote: std::net::SocketAddr,
    pub local: std::net::SocketAddr,
    /// Host header name, lower-case, without port (`SERVER_NAME`).
    pub server_name: String,
    /// Port from the Host header, or the listener's known port.
    pub server_port: u16,
    /// Headers that survive errors and internal redirects (cookies).
    pub err_headers_out: Vec<(String, String)>,
    /// Cookie names already set by `[CO]` (set at most once per request).
    pub cookies_set: Vec<String>,
    pub request_time: std::time::SystemTime,
    /// Each directory's `.htaccess` as this request first saw it: internal
    /// redirects and sub-requests see the same version even if the file
    /// is replaced meanwhile.  Also the request's stat results.
    pub htaccess_seen: super::site::Seen,
    /// `htgate explain`'s record of the request; `None` when serving, so
    /// that each record point is one branch.
    pub trace: Option<super::trace::Trace>,
    /// The user HTTP authentication established (`r->user`, shared with
    /// sub-requests and internal redirects).
    pub user: Option<String>,
    /// Where the work budget ran out (`file:line:col` of the rule, or
    /// what was running), for the log line.
    pub budget_at: Option<String>,
    /// Running on an async worker: work that may block or take long
    /// (password hashing, a listing, a cold compile) is not done here but
    /// asked for with [`Main::needs_blocking`], and the request is run
    /// again on the blocking pool.
    pub inline: bool,
    /// Why this run must be repeated on the blocking pool.
    pub offload: Option<&'static str>,
}

/// The handler a request ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    Default,
    /// mod_rewrite's `redirect-handler`: internal redirect to this URL.
    Redirect(String),
    /// mod_rewrite `[H=...]` / `SetHandler` with a name htgate does not run.
    Named(String),
}

/// One request (`request_rec`): the main request, an internal redirect or a
/// sub-request.
#[derive(Clone)]
pub struct Req {
    pub uri: String,
    pub args: Option<String>,
    pub filename: String,
    pub path_info: String,
    pub finfo: FileKind,
    pub meta: Option<Arc<Metadata>>,
    pub status: u16,
    pub env: Vec<(String, String)>,
    pub headers_out: Vec<(String, String)>,
    pub vary: Vec<String>,
    pub conf: Arc<Merged>,
    pub is_subreq: bool,
    pub handler: Handler,
    pub content_type: Option<String>,
    /// `[T=...]` of this request (lost on internal redirect).
    pub forced_type: Option<String>,
    /// Whether mod_ssl's fixup ran (HTTPS=on is in the env from then on).
    pub fixups_ran: bool,
    /// `[END]` was used in this request chain.
    pub end: bool,
    /// Internal redirects so far.
    pub redirects: u32,
    /// Sub-request nesting depth.
    pub subreq_depth: u32,
    /// Whether mod_rewrite noted Vary headers that must survive an internal
    /// redirect (`redirect-keeps-vary`).
    pub keeps_vary: bool,
}

/// Why processing stopped before the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub status: u16,
    pub location: Option<String>,
    /// Whether the per-dir config was known (for ErrorDocument/Header).
    pub configured: bool,
}

impl Stop {
    pub fn status(status: u16) -> Stop {
        Stop {
            status,
            location: None,
            configured: true,
        }
    }
    pub fn early(status: u16) -> Stop {
        Stop {
            status,
            location: None,
            configured: false,
        }
    }
    pub fn redirect(status: u16, location: String) -> Stop {
        Stop {
            status,
            location: Some(location),
            configured: true,
        }
    }
}

impl Req {
    /// A new request for `target` (`path?query`, raw), as the first request
    /// or after an internal redirect.  Parses, normalises and decodes the
    /// path.  Apache: `ap_parse_uri`, `ap_process_request_internal`.
    pub fn new(site: &Site, target: &str) -> Result<Req, Stop> {
        // a fragment is never part of the request
        let target = target.split('#').next().unwrap_or("");
        let (raw_path, args) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (target, None),
        };
        if !raw_path.starts_with('/') {
            return Err(Stop::early(400));
        }
        let normalized = escape::normalize_path(raw_path).ok_or(Stop::early(400))?;
        // Without a `%` there is nothing to decode and nothing to refuse:
        // the normalized path is the URI (no copy, the usual case).
        let uri = if normalized.contains('%') {
            let decoded = match escape::unescape_url(&normalized) {
                Ok(d) => d,
                Err(escape::UnescapeError::BadEscape) => return Err(Stop::early(400)),
                Err(escape::UnescapeError::ForbiddenChar) => return Err(Stop::early(404)),
            };
            match String::from_utf8(decoded) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            }
        } else {
            normalized
        };
        Ok(Req {
            uri,
            args,
            filename: String::new(),
            path_info: String::new(),
            finfo: FileKind::Missing,
            meta: None,
            status: 200,
            env: Vec::new(),
            headers_out: Vec::new(),
            vary: Vec::new(),
            conf: site.server_default.clone(),
            is_subreq: false,
            handler: Handler::Default,
            content_type: None,
            forced_type: None,
            fixups_ran: false,
            end: false,
            redirects: 0,
            subreq_depth: 0,
            keeps_vary: false,
        })
    }

    pub(crate) fn env_get(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn env_set(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_string(), value.to_string()));
    }

    pub(crate) fn env_unset(&mut self, name: &str) {
        self.env.retain(|(k, _)| k != name);
    }

    pub(crate) fn add_vary(&mut self, name: &str) {
        if !self.vary.iter().any(|v| v.eq_ignore_ascii_case(name)) {
            self.vary.push(name.to_string());
        }
    }
}

/// SECURITY: whether the symbolic link `lm` (whose target is `st`) may
/// be followed where `conf` applies.
fn symlink_allowed(conf: &Merged, st: &PathStat, lm: &Metadata) -> bool {
    if conf.options & OPT_SYM_LINKS != 0 && !conf.symlinks_owner_only {
        return true;
    }
    if conf.options & (OPT_SYM_OWNER | OPT_SYM_LINKS) != 0 {
        if let Some(target) = &st.meta {
            return target.uid() == lm.uid();
        }
    }
    false
}

impl<'a> Main<'a> {
    /// `ap_process_request_internal`: everything up to (not including) the
    /// handler.  On success the request is ready for its handler.
    pub fn process(&mut self, r: &mut Req) -> Result<(), Stop> {
        self.note(|| TraceEvent::request(r));
        if r.redirects > MAX_RECURSION || r.subreq_depth > MAX_RECURSION {
            return Err(Stop::early(500));
        }
        self.directory_walk(r)?;
        self.file_walk(r);
        self.if_walk(r);
        self.header_parser(r);
        self.check_access(r)?;
        self.type_checker(r);
        self.fixups(r)
    }

    /// `translate_name` + `ap_directory_walk`: map the URL to a file, find
    /// PATH_INFO, read and merge every `.htaccess` on the way.
    pub fn directory_walk(&mut self, r: &mut Req) -> Result<(), Stop> {
        let site = self.site;
        let docroot = site.docroot.as_str();
        let mut conf: Arc<Merged> = site.server_default.clone();
        conf = self.merge_dir(conf, docroot)?;
        // One buffer grows by a component at a time: the path of the
        // current candidate, then the file name.
        let mut path = String::with_capacity(docroot.len() + r.uri.len() + 1);
        path.push_str(docroot.trim_end_matches('/'));
        let mut finfo = FileKind::Dir;
        let mut meta = self.stat_path(docroot).meta;
        // whether the file name is the directory with a trailing slash
        let mut slash = true;
        let mut path_info = String::new();
        let mut rest = r.uri.strip_prefix('/').unwrap_or(&r.uri);
        loop {
            let (comp, tail) = match rest.split_once('/') {
                Some((c, t)) => (c, Some(t)),
                None => (rest, None),
            };
            if comp.is_empty() {
                // trailing slash (or the root itself)
                break;
            }
            path.push('/');
            path.push_str(comp);
            let st = self.stat_path(&path);
            // SECURITY: symlinks are followed only where Options allow it.
            if let Some(lm) = &st.link {
                if !symlink_allowed(&conf, &st, lm) {
                    self.note(|| TraceEvent::denied("a symbolic link that Options do not allow"));
                    return Err(Stop::status(403));
                }
            }
            finfo = st.kind;
            meta = st.meta;
            if st.kind == FileKind::Dir {
                conf = self.merge_dir(conf, &path)?;
                slash = tail.is_some();
                match tail {
                    Some(t) => rest = t,
                    None => break,
                }
            } else {
                slash = false;
                if let Some(t) = tail {
                    path_info = format!("/{t}");
                }
                break;
            }
        }
        if slash {
            path.push('/');
        }
        r.filename = path;
        r.path_info = path_info;
        r.finfo = finfo;
        r.meta = meta;
        r.conf = conf;
        self.note(|| TraceEvent::mapped(r));
        Ok(())
    }

    fn merge_dir(&mut self, parent: Arc<Merged>, dir: &str) -> Result<Arc<Merged>, Stop> {
        let Some((entry, seen)) = self
            .htaccess_seen
            .htaccess(&self.site.cache, dir, self.inline)
        else {
            self.needs_blocking("compiling a large .htaccess");
            return Err(Stop::early(500));
        };
        self.note(|| TraceEvent::directory(dir, &seen));
        match seen {
            Htaccess::None => Ok(parent),
            Htaccess::Ok(c) => {
                if let Some(s) = c.config.first_php_value() {
                    if !self.site.php_values_allowed() {
                        // Apache without mod_php: "Invalid command
                        // 'php_value'", a 500 for the whole directory.
                        tracing::error!(
                            "{}/.htaccess:{}: {} is not allowed on this site ({})",
                            dir.trim_end_matches('/'),
                            s.at,
                            s.name,
                            if self.site.php.is_some() {
                                "php_values = false in its htgate.toml entry"
                            } else {
                                "it has no php_fpm"
                            }
                        );
                        return Err(Stop::early(500));
                    }
                }
                // Every request of this directory shares one merged
                // config (built again only when this file or a parent's
                // changed).
                Ok(entry.merged_on(&parent, &c, || {
                    let directory = format!("{}/", dir.trim_end_matches('/'));
                    parent.merge(&c.config, &directory)
                }))
            }
            Htaccess::Broken(c) => {
                // Apache reads the file for every request and logs its
                // error each time (core:alert), with the client: so does
                // this, with the site and the request line too.
                let file = format!("{}/.htaccess", dir.trim_end_matches('/'));
                if let Some(d) = c.diagnostics.iter().find(|d| d.is_error()) {
                    tracing::error!(
                        target: "htaccess",
                        site = %self.site.limits.name,
                        client = %self.remote.ip(),
                        request = %self.the_request,
                        "{file}:{}:{}: {} (500 for this request)",
                        d.span.line,
                        d.span.col,
                        d.message
                    );
                }
                Err(Stop::early(500))
            }
            Htaccess::Unreadable(why) => {
                tracing::error!(
                    target: "htaccess",
                    site = %self.site.limits.name,
                    client = %self.remote.ip(),
                    request = %self.the_request,
                    "{}/.htaccess: {why} (500 for this request)",
                    dir.trim_end_matches('/')
                );
                Err(Stop::early(500))
            }
        }
    }

    /// `ap_file_walk`: merge the `<Files>` sections that match the file name.
    fn file_walk(&mut self, r: &mut Req) {
        let name = r.filename.rsplit('/').next().unwrap_or("");
        if name.is_empty() || r.conf.files.is_empty() {
            return;
        }
        let directory = &r.conf.rewrite.directory;
        // Copied only when a section applies (most requests match none).
        let mut conf: Option<Merged> = None;
        for section in r.conf.files.iter() {
            let hit = match &section.matcher {
                FilesMatcher::Glob(g) => htgate_util::fnmatch::fnmatch(
                    g.as_bytes(),
                    name.as_bytes(),
                    htgate_util::fnmatch::Flags::NONE,
                ),
                FilesMatcher::Regex(p) => p.is_match(name),
            };
            if hit {
                let base = conf.as_ref().unwrap_or(&r.conf);
                let mut merged = base.merge(&section.config, directory);
                merged.files = base.files.clone();
                conf = Some(merged);
            }
        }
        if let Some(conf) = conf {
            r.conf = Arc::new(conf);
        }
    }

    /// `ap_if_walk`: evaluate `<If>` chains and merge the branch that holds.
    fn if_walk(&mut self, r: &mut Req) {
        if r.conf.ifs.is_empty() {
            return;
        }
        let chains = r.conf.ifs.clone();
        let directory = r.conf.rewrite.directory.clone();
        let mut conf = (*r.conf).clone();
        conf.ifs.clear();
        for chain in chains.iter() {
            for (cond, cfg) in &chain.branches {
                let holds = match cond {
                    None => true,
                    Some(e) => self.eval_expr(r, e).map(|o| o.value).unwrap_or(false),
                };
                if holds {
                    conf = conf.merge(cfg, &directory);
                    break;
                }
            }
        }
        r.conf = Arc::new(conf);
    }

    /// mod_setenvif's header_parser hook (per-dir SetEnvIf, BrowserMatch).
    fn header_parser(&mut self, r: &mut Req) {
        if r.conf.set_env_if.is_empty() {
            return;
        }
        let rules = r.conf.set_env_if.clone();
        for rule in rules.iter() {
            use super::config::SetEnvAttr::*;
            let subject: Option<String> = match &rule.attribute {
                RemoteHost | RemoteAddr => Some(self.remote.ip().to_string()),
                ServerAddr => Some(self.local.ip().to_string()),
                RequestMethod => Some(self.method.clone()),
                RequestProtocol => Some(self.protocol.clone()),
                RequestUri => Some(r.uri.clone()),
                Header(h) => self.header(h).or_else(|| r.env_get(h).map(str::to_string)),
                // The last header whose name matches (match_headers loops
                // over all of headers_in without stopping).  Apache sees
                // the names as the client wrote them; htgate only has them
                // lower-cased, so it also tries the usual spelling
                // (`X-Custom`), which is what HTTP/1.1 clients send.
                HeaderRegex(p) => self
                    .headers_in
                    .iter()
                    .filter(|(n, _)| p.is_match(n.as_str()) || p.is_match(&title_case(n.as_str())))
                    .last()
                    .map(|(_, v)| String::from_utf8_lossy(v.as_bytes()).into_owned()),
                Env(n) => r.env_get(n).map(str::to_string),
                Expr(e) => {
                    let ok = self.eval_expr(r, e).map(|o| o.value).unwrap_or(false);
                    ok.then(String::new)
                }
            };
            // A missing header or variable is matched as the empty string,
            // so `^$` works (mod_setenvif.c match_headers).
            let caps = match &rule.attribute {
                Expr(_) => match subject {
                    Some(_) => Vec::new(),
                    None => continue,
                },
                _ => {
                    let subject = subject.clone().unwrap_or_default();
                    match rule.pattern.captures(&subject) {
                        Some(c) => c,
                        None => continue,
                    }
                }
            };
            let subject = subject.unwrap_or_default();
            for (name, value) in &rule.assignments {
                match value {
                    Some(v) if !rule.simple && !matches!(rule.attribute, Expr(_)) => {
                        r.env_set(name, &pregsub(v, &subject, &caps))
                    }
                    Some(v) => r.env_set(name, v),
                    None => r.env_unset(name),
                }
            }
        }
    }

    fn check_access(&mut self, r: &mut Req) -> Result<(), Stop> {
        let conf = r.conf.clone();
        if let Some(ac) = &conf.access_compat {
            let mut a = AuthzAdapter { main: self, r };
            let allowed = ac.allows(&mut a);
            // `Satisfy Any`: the host-based check alone is enough; only
            // when it fails does mod_authz_core decide (request.c
            // ap_process_request_internal, SATISFY_ANY).
            if ac.satisfy_any && allowed {
                return Ok(());
            }
            if !allowed && !ac.satisfy_any {
                self.note(|| TraceEvent::denied("Order/Allow/Deny (mod_access_compat)"));
                return Err(Stop::status(403));
            }
        }
        if let Some(authz) = &conf.authz {
            let mut a = AuthzAdapter { main: self, r };
            match authz.check(&mut a) {
                super::access::Decision::Granted => {}
                super::access::Decision::DeniedNoUser if self.user.is_none() => {
                    // `authorize_userless_request` declined: authenticate,
                    // then authorize again with the user
                    self.authenticate(r, &conf)?;
                    let mut a = AuthzAdapter { main: self, r };
                    if authz.check(&mut a) != super::access::Decision::Granted {
                        self.note(|| TraceEvent::denied("Require with the authenticated user"));
                        self.auth_challenge(&conf);
                        return Err(Stop::status(401));
                    }
                }
                super::access::Decision::DeniedNoUser => {
                    self.note(|| TraceEvent::denied("Require with the authenticated user"));
                    self.auth_challenge(&conf);
                    return Err(Stop::status(401));
                }
                _ => {
                    self.note(|| TraceEvent::denied("Require (mod_authz_core)"));
                    return Err(Stop::status(403));
                }
            }
        }
        Ok(())
    }

    /// mod_auth_basic + mod_authn_file: the user of a valid `Basic`
    /// Authorization header, else 401 with the challenge (500 when the
    /// folder's auth configuration is incomplete, as Apache).
    fn authenticate(&mut self, r: &mut Req, conf: &Merged) -> Result<(), Stop> {
        let auth = &conf.auth;
        let Some(Some(_)) = &auth.auth_type else {
            tracing::error!(
                "{}: Require needs a user but no AuthType is set (AuthType Basic)",
                r.filename
            );
            return Err(Stop::status(500));
        };
        if auth.name.is_none() {
            tracing::error!("{}: AuthType Basic needs an AuthName", r.filename);
            return Err(Stop::status(500));
        }
        let Some(file) = auth.user_file.clone() else {
            tracing::error!("{}: AuthType Basic needs an AuthUserFile", r.filename);
            return Err(Stop::status(500));
        };
        let header = self
            .headers_in
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(super::auth::basic_credentials);
        let Some((user, password)) = header else {
            self.auth_challenge(conf);
            return Err(Stop::status(401));
        };
        let path = self.site_path(&file);
        let uid = self.site_uid();
        let table =
            match super::auth::load_with(&path, uid, super::auth::parse_passwords, !self.inline) {
                Ok(Some(t)) => t,
                Ok(None) => {
                    self.needs_blocking("reading an AuthUserFile");
                    return Err(Stop::status(500));
                }
                Err(e) => {
                    tracing::error!("AuthUserFile {}: {e}", path.display());
                    return Err(Stop::status(500));
                }
            };
        // Hashing costs what the file's author chose (bcrypt cost 14 is
        // a second): never on an async worker, and a verified login is
        // remembered for a while.
        let ok = match table.entries.get(&user) {
            None => false,
            Some(hash) if super::auth::verified_before(&path, &user, hash, &password) => true,
            Some(_) if self.needs_blocking("verifying a password") => {
                return Err(Stop::status(500));
            }
            Some(hash) => {
                let ok = super::auth::verify(&password, hash);
                if ok {
                    super::auth::remember_verified(&path, &user, hash, &password);
                }
                ok
            }
        };
        if !ok {
            tracing::info!("user {user:?}: authentication failure for {}", r.uri);
            self.auth_challenge(conf);
            return Err(Stop::status(401));
        }
        self.user = Some(user);
        Ok(())
    }

    /// `WWW-Authenticate: Basic realm="…"` (kept on the error answer).
    fn auth_challenge(&mut self, conf: &Merged) {
        let realm = conf.auth.name.clone().unwrap_or_default();
        let realm = realm.replace('\\', "\\\\").replace('"', "\\\"");
        self.err_headers_out
            .retain(|(k, _)| !k.eq_ignore_ascii_case("www-authenticate"));
        self.err_headers_out.push((
            "WWW-Authenticate".into(),
            format!("Basic realm=\"{realm}\""),
        ));
    }

    /// A path from a site's `.htaccess` (AuthUserFile): absolute as
    /// written, else relative to the folder above the document root.
    /// Apache resolves it against its ServerRoot, which a hosted site has
    /// no say over; the folder above `public_html` is the account's home
    /// on most hosts (and the reference environment's ServerRoot).
    fn site_path(&self, p: &str) -> std::path::PathBuf {
        let path = std::path::Path::new(p);
        if path.is_absolute() {
            return path.to_path_buf();
        }
        let root = std::path::Path::new(&self.site.docroot);
        root.parent().unwrap_or(root).join(path)
    }

    /// The owner of the site's document root: password and group files
    /// must be theirs (or root's).
    /// A sub-request costs [`htgate_util::budget::SUBREQUEST`] units.
    fn charge_subrequest(&mut self, what: &str) -> Result<(), Stop> {
        use htgate_util::budget::{charge, Work, SUBREQUEST};
        if charge(Work::Subrequests, SUBREQUEST) {
            return Ok(());
        }
        if self.budget_at.is_none() {
            self.budget_at = Some(format!("sub-request for {what}"));
        }
        Err(Stop::early(500))
    }

    /// Records where the budget ran out: the rule at `line:col` of the
    /// `.htaccess` in `perdir` (the first place is kept).
    pub(crate) fn budget_spent_at(&mut self, perdir: &str, line: u32, col: u32) {
        if self.budget_at.is_none() {
            let dir = perdir.trim_end_matches('/');
            self.budget_at = Some(format!("{dir}/.htaccess:{line}:{col}"));
        }
    }

    /// Asks for this request to be run again on the blocking pool
    /// (`reason` says what needs it), when running inline.  `true`: the
    /// caller stops here (returning any error: the run's outcome is
    /// replaced); `false`: go on, blocking is allowed.
    pub(crate) fn needs_blocking(&mut self, reason: &'static str) -> bool {
        if self.inline {
            self.offload.get_or_insert(reason);
            true
        } else {
            false
        }
    }

    fn site_uid(&self) -> u32 {
        std::fs::metadata(&self.site.docroot)
            .map(|m| m.uid())
            .unwrap_or(0)
    }

    /// mod_mime's type checker: the content type from the file name.
    pub(crate) fn type_checker(&mut self, r: &mut Req) {
        r.content_type = None;
        if r.finfo == FileKind::Dir {
            return;
        }
        let name = r.filename.rsplit('/').next().unwrap_or("");
        let mut ctype = content_type_for(self.site, &r.conf, name);
        // The innermost ForceType wins; `ForceType None` cancels an outer
        // one and leaves the type from the extension (core.c
        // merge_core_dir_configs keeps the last mime_type, and
        // core_override_type skips the value "none").
        let forced = r.conf.mime.iter().rev().find_map(|m| m.force_type.clone());
        if let Some(Some(t)) = forced {
            ctype = Some(t);
        }
        r.content_type = ctype;
    }

    /// The fixup phase.  Apache hook order: mod_rewrite (FIRST), mod_ssl,
    /// mod_alias, mod_env, mod_headers (RequestHeader), mod_dir (LAST).
    fn fixups(&mut self, r: &mut Req) -> Result<(), Stop> {
        self.rewrite_fixup(r)?;
        r.fixups_ran = true;
        if self.tls {
            r.env_set("HTTPS", "on");
        }
        self.alias_fixup(r)?;
        let set_env = r.conf.set_env.clone();
        for (k, v) in set_env.iter() {
            match v {
                Some(v) => r.env_set(k, v),
                None => r.env_unset(k),
            }
        }
        self.request_headers(r);
        if let Some(t) = r.forced_type.clone() {
            r.content_type = Some(t);
        }
        self.dir_fixup(r)
    }

    /// mod_alias `fixup_redir`: `Redirect`/`RedirectMatch` in .htaccess,
    /// matched against `r->uri` (which per-dir rewriting does not change).
    fn alias_fixup(&mut self, r: &mut Req) -> Result<(), Stop> {
        if r.conf.redirects.is_empty() {
            return Ok(());
        }
        let redirects = r.conf.redirects.clone();
        for rd in redirects.iter() {
            let found: Option<Option<String>> = match &rd.kind {
                super::config::AliasKind::Prefix(prefix) => {
                    alias_prefix_match(&r.uri, prefix).map(|rest| {
                        rd.target
                            .as_ref()
                            .map(|t| format!("{t}{}", escape::escape_uri(rest)))
                    })
                }
                // try_alias_list: ap_pregsub on the decoded URI, then the
                // result's path is escaped as a whole; its query and
                // fragment are kept as they are.
                super::config::AliasKind::Regex(p) => p.captures(&r.uri).map(|caps| {
                    rd.target
                        .as_ref()
                        .map(|t| escape_redirect_match(&super::pattern::pregsub(t, &r.uri, &caps)))
                }),
            };
            let Some(target) = found else { continue };
            self.note(|| TraceEvent::alias(rd.status, target.as_deref()));
            if !(300..400).contains(&rd.status) {
                return Err(Stop::status(rd.status));
            }
            let Some(mut target) = target else {
                return Err(Stop::status(rd.status));
            };
            // the query of the (possibly rewritten) request is appended
            // unless the target has its own (SEMANTICS D4)
            if !target.contains('?') {
                if let Some(a) = &r.args {
                    target.push('?');
                    target.push_str(a);
                }
            }
            let location = if target.starts_with('/') {
                self.construct_url(&target)
            } else {
                target
            };
            return Err(Stop::redirect(rd.status, location));
        }
        Ok(())
    }

    fn request_headers(&mut self, r: &mut Req) {
        if r.conf.request_headers.is_empty() {
            return;
        }
        let actions = r.conf.request_headers.clone();
        for a in actions.iter() {
            super::respond::apply_request_header(self, r, a);
        }
    }

    /// mod_dir's fixup: the trailing-slash redirect and the index look-up.
    fn dir_fixup(&mut self, r: &mut Req) -> Result<(), Stop> {
        // mod_dir.c dir_fixups: nothing on disk and no handler: the
        // FallbackResource (this also runs in the index sub-requests of
        // fixup_dir, so a directory without index gets the fallback too).
        if r.finfo == FileKind::Missing && matches!(r.handler, Handler::Default) {
            return self.fallback_fixup(r);
        }
        if r.finfo != FileKind::Dir || !r.path_info.is_empty() {
            return Ok(());
        }
        if !r.uri.ends_with('/') {
            if !r.conf.directory_slash {
                return Ok(());
            }
            let mut target = format!("{}/", escape::escape_uri(&r.uri));
            if let Some(a) = &r.args {
                target.push('?');
                target.push_str(a);
            }
            self.note(|| TraceEvent::slash(&target));
            return Err(Stop::redirect(301, self.construct_url(&target)));
        }
        if matches!(r.handler, Handler::Redirect(_)) {
            return Ok(());
        }
        let names = r.conf.directory_index.clone();
        let mut error_notfound: Option<u16> = None;
        for name in names.iter() {
            let mut sub_uri = if name.starts_with('/') {
                name.clone()
            } else {
                format!("{}{}", r.uri, name)
            };
            if let Some(a) = &r.args {
                sub_uri.push('?');
                sub_uri.push_str(a);
            }
            let rr = self.subrequest_uri(r, &escape_for_target(&sub_uri));
            match rr {
                Ok(rr) => {
                    if rr.status == 200 && rr.finfo == FileKind::File {
                        self.note(|| TraceEvent::index(name, &rr));
                        fast_redirect(rr, r);
                        return Ok(());
                    }
                }
                Err(stop) => {
                    if (300..400).contains(&stop.status) {
                        return Err(stop);
                    }
                    if stop.status != 404 {
                        error_notfound = Some(stop.status);
                    }
                }
            }
        }
        if let Some(s) = error_notfound {
            return Err(Stop::status(s));
        }
        Ok(())
    }

    /// mod_dir.c `fixup_dflt`: a URL sub-request for the FallbackResource
    /// (with the request's query); a regular file found there is taken
    /// over, a redirect or an error other than 404 is answered.
    fn fallback_fixup(&mut self, r: &mut Req) -> Result<(), Stop> {
        let Some(name) = r.conf.fallback_resource.clone() else {
            return Ok(());
        };
        // ap_sub_req_lookup_uri resolves a relative name against the
        // directory of the current URI.
        let mut sub_uri = if name.starts_with('/') {
            name
        } else {
            let dir = r.uri.rfind('/').map(|i| &r.uri[..=i]).unwrap_or("/");
            format!("{dir}{name}")
        };
        if let Some(a) = &r.args {
            sub_uri.push('?');
            sub_uri.push_str(a);
        }
        match self.subrequest_uri(r, &escape_for_target(&sub_uri)) {
            Ok(rr) if rr.status == 200 && rr.finfo == FileKind::File => {
                self.note(|| TraceEvent::fallback(&rr));
                fast_redirect(rr, r);
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(stop) if stop.status == 404 => Ok(()),
            Err(stop) => Err(stop),
        }
    }

    /// `ap_sub_req_lookup_uri`: run every phase up to the fixups for `target`
    /// (relative to nothing: it must start with `/`).
    pub(crate) fn subrequest_uri(&mut self, parent: &Req, target: &str) -> Result<Req, Stop> {
        self.charge_subrequest(target)?;
        let mut rr = Req::new(self.site, target)?;
        rr.is_subreq = true;
        rr.subreq_depth = parent.subreq_depth + 1;
        rr.redirects = parent.redirects;
        rr.env = parent.env.clone();
        let done = self.process(&mut rr);
        self.note(|| TraceEvent::subrequest_end(&done, &rr));
        done?;
        Ok(rr)
    }

    /// `ap_sub_req_lookup_file`: like a URI look-up but for a file path.
    pub(crate) fn subrequest_file(&mut self, parent: &Req, path: &str) -> Result<Req, Stop> {
        self.charge_subrequest(path)?;
        let docroot = self.site.docroot.clone();
        let uri = match path.strip_prefix(&docroot) {
            Some(rest) if rest.starts_with('/') => rest.to_string(),
            _ => {
                // outside the document root: only the file's existence
                let st = self.test_path(path);
                let mut rr = parent.clone();
                rr.is_subreq = true;
                rr.filename = path.to_string();
                rr.finfo = st.kind;
                rr.meta = st.meta;
                rr.status = 200;
                return Ok(rr);
            }
        };
        self.subrequest_uri(parent, &escape_for_target(&uri))
    }

    /// `ap_construct_url`: `scheme://host[:port]` + path for Location.
    pub(crate) fn construct_url(&self, path: &str) -> String {
        format!("{}{}", self.self_prefix(), path)
    }

    /// `scheme://name[:port]` of this request (port only when not default).
    pub(crate) fn self_prefix(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let default = if self.tls { 443 } else { 80 };
        let host = if self.server_name.contains(':') {
            format!("[{}]", self.server_name)
        } else {
            self.server_name.clone()
        };
        if self.server_port == default {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{host}:{}", self.server_port)
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let mut values = self.headers_in.get_all(name).iter();
        let first = values.next()?;
        let mut s = String::from_utf8_lossy(first.as_bytes()).into_owned();
        for v in values {
            s.push_str(", ");
            s.push_str(&String::from_utf8_lossy(v.as_bytes()));
        }
        Some(s)
    }

    pub(crate) fn eval_expr(
        &mut self,
        r: &mut Req,
        e: &expr::Expr,
    ) -> Result<expr::Outcome, expr::EvalError> {
        let mut ctx = ExprCtx { main: self, r };
        e.eval(&mut ctx)
    }

    pub(crate) fn eval_string_expr(
        &mut self,
        r: &mut Req,
        e: &expr::StringExpr,
    ) -> Result<String, expr::EvalError> {
        let mut ctx = ExprCtx { main: self, r };
        e.eval(&mut ctx)
    }
}

/// `%`-escapes a decoded path again so that it can be parsed as a request
/// target (index names and sub-request URLs are decoded text).
fn escape_for_target(s: &str) -> String {
    let (p, q) = match s.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (s, None),
    };
    let mut out = escape::escape_uri(p);
    if let Some(q) = q {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// `ap_internal_fast_redirect`: the main request takes over the
/// sub-request's state.
fn fast_redirect(rr: Req, r: &mut Req) {
    r.uri = rr.uri;
    r.args = rr.args;
    r.filename = rr.filename;
    r.path_info = rr.path_info;
    r.finfo = rr.finfo;
    r.meta = rr.meta;
    r.conf = rr.conf;
    r.handler = rr.handler;
    r.content_type = rr.content_type;
    r.forced_type = rr.forced_type;
    r.env = rr.env;
    for (k, v) in rr.headers_out {
        r.headers_out.push((k, v));
    }
    for v in rr.vary {
        r.add_vary(&v);
    }
}

/// mod_alias's prefix match: `prefix` must match whole path segments.
/// Returns the rest of the path.  Apache: `mod_alias.c` `alias_matches`
/// (slashes in the prefix match runs of slashes).
/// mod_alias.c try_alias_list for RedirectMatch: `apr_uri_parse`, then
/// `ap_escape_uri` on everything but the query and the fragment, which are
/// appended unchanged.
fn escape_redirect_match(found: &str) -> String {
    let path_end = found.find(['?', '#']).unwrap_or(found.len());
    let (path, rest) = found.split_at(path_end);
    let mut out = escape::escape_uri(path);
    let (query, fragment) = match rest.strip_prefix('?') {
        Some(q) => match q.split_once('#') {
            Some((q, f)) => (Some(q), Some(f)),
            None => (Some(q), None),
        },
        None => (None, rest.strip_prefix('#')),
    };
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// mod_setenvif: `$N` in a value (ap_pregsub).
fn pregsub(v: &str, subject: &str, caps: &super::pattern::Captures) -> String {
    super::pattern::pregsub(v, subject, caps)
}

fn alias_prefix_match<'u>(uri: &'u str, prefix: &str) -> Option<&'u str> {
    let u = uri.as_bytes();
    let p = prefix.as_bytes();
    let (mut ui, mut pi) = (0, 0);
    while pi < p.len() {
        if p[pi] == b'/' {
            if ui >= u.len() || u[ui] != b'/' {
                return None;
            }
            while pi < p.len() && p[pi] == b'/' {
                pi += 1;
            }
            while ui < u.len() && u[ui] == b'/' {
                ui += 1;
            }
        } else {
            if ui >= u.len() || u[ui] != p[pi] {
                return None;
            }
            ui += 1;
            pi += 1;
        }
    }
    // the match must end at a segment boundary
    if pi > 0 && p[pi - 1] != b'/' && ui < u.len() && u[ui] != b'/' {
        return None;
    }
    uri.get(ui..)
}

/// The content type for a file name: the built-in table, then every
/// `AddType`/`RemoveType` in force (parent first), mod_mime's rule that
/// every extension is looked up and the last known one wins.
pub(crate) fn content_type_for(site: &Site, conf: &Merged, name: &str) -> Option<String> {
    // Borrowed until the end: one copy for the answer, none per extension.
    let mut ctype: Option<&str> = None;
    let mut charset: Option<&str> = None;
    let mut parts = name.split('.');
    parts.next();
    for ext in parts {
        let ext: std::borrow::Cow<str> = if ext.bytes().any(|b| b.is_ascii_uppercase()) {
            ext.to_ascii_lowercase().into()
        } else {
            ext.into()
        };
        let mut found: Option<Option<&str>> = None;
        for m in conf.mime.iter() {
            for (e, t) in &m.types {
                if *e == ext {
                    found = Some(t.as_deref());
                }
            }
            for (e, c) in &m.charsets {
                if *e == ext {
                    charset = Some(c);
                }
            }
        }
        match found {
            Some(Some(t)) => ctype = Some(t),
            // RemoveType: this extension contributes no type at all
            Some(None) => {}
            None => {
                if let Some(t) = site.mime.lookup(&ext) {
                    ctype = Some(t);
                }
            }
        }
    }
    match (ctype, charset) {
        (Some(t), Some(c)) if !t.contains("charset") => Some(format!("{t}; charset={c}")),
        (t, _) => t.map(str::to_string),
    }
}

struct AuthzAdapter<'m, 'a, 'r> {
    main: &'m mut Main<'a>,
    r: &'r mut Req,
}

impl super::access::AuthzRequest for AuthzAdapter<'_, '_, '_> {
    fn method(&self) -> &str {
        &self.main.method
    }
    fn remote_ip(&self) -> IpAddr {
        self.main.remote.ip()
    }
    fn local_ip(&self) -> Option<IpAddr> {
        Some(self.main.local.ip())
    }
    fn user(&self) -> Option<String> {
        self.main.user.clone()
    }
    fn in_group(&mut self, group: &str) -> bool {
        let Some(user) = self.main.user.clone() else {
            return false;
        };
        let Some(file) = self.r.conf.auth.group_file.clone() else {
            tracing::error!("Require group {group}: no AuthGroupFile is set");
            return false;
        };
        let path = self.main.site_path(&file);
        let may_read = !self.main.inline;
        match super::auth::load_with(
            &path,
            self.main.site_uid(),
            super::auth::parse_groups,
            may_read,
        ) {
            Ok(Some(t)) => super::auth::in_group(&t, group, &user),
            Ok(None) => {
                self.main.needs_blocking("reading an AuthGroupFile");
                false
            }
            Err(e) => {
                tracing::error!("AuthGroupFile {}: {e}", path.display());
                false
            }
        }
    }
    fn env(&self, name: &str) -> Option<String> {
        self.r.env_get(name).map(str::to_string)
    }
    fn eval_expr(&mut self, e: &expr::Expr) -> bool {
        self.main
            .eval_expr(self.r, e)
            .map(|o| o.value)
            .unwrap_or(false)
    }
}

/// The ap_expr view of a request.
pub(crate) struct ExprCtx<'m, 'a, 'r> {
    pub main: &'m mut Main<'a>,
    pub r: &'r mut Req,
}

impl expr::Context for ExprCtx<'_, '_, '_> {
    fn var(&mut self, name: &str) -> Option<String> {
        let upper = name.to_ascii_uppercase();
        match upper.as_str() {
            "CONTENT_TYPE" => return Some(self.r.content_type.clone().unwrap_or_default()),
            "HANDLER" => return Some(String::new()),
            "REQUEST_STATUS" => return Some(self.r.status.to_string()),
            "SCRIPT_NAME" => return Some(self.r.uri.clone()),
            "REQUEST_LOG_ID" | "CONN_LOG_ID" => return Some(String::new()),
            _ => {}
        }
        let v = super::template::Var::resolve(name);
        match v {
            super::template::Var::Named(n) => Some(self.main.named_var(self.r, n)),
            _ => None,
        }
    }
    fn req_header(&mut self, name: &str, vary: bool) -> Option<String> {
        if vary && !name.eq_ignore_ascii_case("host") {
            self.r.add_vary(name);
        }
        self.main.header(name)
    }
    fn resp_header(&mut self, name: &str) -> Option<String> {
        self.r
            .headers_out
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
    fn env(&mut self, name: &str) -> Option<String> {
        self.r.env_get(name).map(str::to_string)
    }
    fn note(&mut self, _name: &str) -> Option<String> {
        None
    }
    fn file_test(&mut self, test: expr::FileTest, path: &str) -> bool {
        let st = self.main.test_path(path);
        let m = st.meta.as_deref();
        match test {
            expr::FileTest::Dir => st.kind == FileKind::Dir,
            expr::FileTest::Exists => m.is_some(),
            expr::FileTest::File => st.kind == FileKind::File,
            expr::FileTest::NonEmpty => m.is_some_and(|m| m.is_file() && m.len() > 0),
            expr::FileTest::Symlink => st.is_symlink(),
            expr::FileTest::Executable => m.is_some_and(|m| m.mode() & 0o111 != 0),
        }
    }
    fn file_size(&mut self, path: &str) -> Option<u64> {
        self.main.test_path(path).meta.map(|m| m.len())
    }
    fn url_accessible(&mut self, url: &str) -> bool {
        let parent = self.r.clone();
        match self.main.subrequest_uri(&parent, url) {
            Ok(rr) => rr.status < 400,
            Err(stop) => stop.status < 400,
        }
    }
    fn remote_ip(&mut self) -> Option<IpAddr> {
        Some(self.main.remote.ip())
    }
}

/// `User-Agent` from `user-agent` (for Vary, as mod_rewrite writes names).
pub(crate) fn title_case(name: &str) -> String {
    name.split('-')
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_match_escapes_only_the_path() {
        assert_eq!(
            escape_redirect_match("/t.html/a b?c d#f g"),
            "/t.html/a%20b?c d#f g"
        );
        assert_eq!(escape_redirect_match("/x#frag?y"), "/x#frag?y");
        assert_eq!(escape_redirect_match("/caf\u{e9}"), "/caf%c3%a9");
    }

    #[test]
    fn alias_prefix() {
        assert_eq!(alias_prefix_match("/old-blog", "/old-blog"), Some(""));
        assert_eq!(
            alias_prefix_match("/old-blog/2020/post", "/old-blog"),
            Some("/2020/post")
        );
        assert_eq!(alias_prefix_match("/old-blogger", "/old-blog"), None);
        assert_eq!(alias_prefix_match("/temp", "/temp"), Some(""));
    }
}
