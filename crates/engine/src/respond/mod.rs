//! From a processed request to an HTTP response: the handler phase
//! (internal redirects, the default handler), error answers with
//! `ErrorDocument`, and the output-side modules (mod_expires, mod_headers,
//! Vary, the debug headers).

use super::config::ErrorDocument;
use super::headers::{FmtPiece, HeaderAction, HeaderCond, HeaderOp, HeaderValue};
use super::request::{FileKind, Handler, Main, Req, Stop};
use super::site::Site;
use crate::ConnInfo;
use htgate_util::escape;
use http::{HeaderMap, HeaderName, HeaderValue as HttpValue, Method, StatusCode};
use std::sync::Arc;

/// What the synchronous part decided; the file itself is sent afterwards.
pub enum Outcome {
    File {
        path: String,
        meta: Arc<std::fs::Metadata>,
        content_type: Option<String>,
        status: u16,
        headers: Vec<(String, String)>,
    },
    Plain {
        status: u16,
        headers: Vec<(String, String)>,
        body: bytes::Bytes,
    },
    /// Hand the request to the site's PHP-FPM pool.
    Php(Box<PhpCall>),
    /// An answer that goes through mod_deflate (AddOutputFilterByType /
    /// SetOutputFilter DEFLATE).
    Filtered(Box<Outcome>, OutputFilter),
    /// Run inline, the request needs work that may block or take long
    /// (the reason): run it again with [`run`] on the blocking pool.
    Offload(&'static str),
}

/// The output filters configured for a request (mod_deflate).
#[derive(Debug, Clone)]
pub struct OutputFilter {
    pub deflate: super::config::DeflateConf,
    pub env: DeflateEnv,
}

impl OutputFilter {
    /// `enabled`: the site has mod_deflate (hosted sites; not the
    /// reference environment, whose Apache has no DEFLATE filter).
    fn for_request(r: &Req, enabled: bool) -> Option<OutputFilter> {
        let d = &r.conf.deflate;
        if !enabled {
            return None;
        }
        if d.by_type.is_empty() && d.always != Some(true) {
            return None;
        }
        Some(OutputFilter {
            deflate: d.clone(),
            env: deflate_env(r),
        })
    }
}

/// Everything the asynchronous side needs to run a PHP request and to
/// finish its answer as Apache's output filters would (mod_expires,
/// mod_headers, Vary, mod_deflate).
pub struct PhpCall {
    pub params: Vec<(String, String)>,
    /// The status the answer has unless PHP sends its own (an
    /// `ErrorDocument 404 /index.php` keeps the 404).
    pub default_status: u16,
    /// Headers set before the handler ran (cookies of `[CO]`, Vary).
    pub headers: Vec<(String, String)>,
    /// `Header` actions whose condition held, with their values.
    pub actions: Vec<(HeaderAction, Option<String>)>,
    pub headers_in: HeaderMap,
    pub expires: super::config::ExpiresConf,
    pub script_mtime: Option<std::time::SystemTime>,
    pub vary: Vec<String>,
    pub debug: Vec<(String, String)>,
    /// mod_deflate for PHP's answer.
    pub filter: Option<OutputFilter>,
}

/// The environment variables mod_deflate looks at.
#[derive(Debug, Clone, Default)]
pub struct DeflateEnv {
    pub no_gzip: bool,
    pub gzip_only_text_html: bool,
    pub force_gzip: bool,
}

/// `make_allow` for core's default handler: it allows GET (listed with
/// HEAD), OPTIONS and POST, in the order of httpd's method registry, and
/// TRACE (TraceEnable on).
const DEFAULT_HANDLER_ALLOW: &str = "OPTIONS,HEAD,GET,POST,TRACE";

/// The request data the engine needs, taken from hyper's request.
#[derive(Clone)]
pub struct RequestHead {
    pub method: Method,
    pub target: String,
    pub protocol: String,
    pub headers: HeaderMap,
    pub authority: Option<String>,
}

/// Why a run inline on a worker stopped because it used its slice of the
/// budget ([`htgate_util::budget::INLINE_SLICE`]).
pub const LONG_RUN: &str = "a long rule run";

/// Runs the whole request, blocking work included (password hashing,
/// listings, cold compiles), within [`htgate_util::budget::BLOCKING_FACTOR`]
/// times the site's budget: call it off the async workers.
pub fn run(site: &Site, head: &RequestHead, conn: &ConnInfo) -> Outcome {
    run_with(site, head, conn, None, Mode::Blocking).0
}

/// Runs again, off the async workers, a request whose inline run ended
/// with [`Outcome::Offload`]`(reason)`.  A run moved only for being long
/// ([`LONG_RUN`]) keeps the request's budget: the same request is stopped
/// at the same point wherever it runs.
pub fn run_offloaded(site: &Site, head: &RequestHead, conn: &ConnInfo, reason: &str) -> Outcome {
    let mode = if reason == LONG_RUN {
        Mode::Moved
    } else {
        Mode::Blocking
    };
    run_with(site, head, conn, None, mode).0
}

/// Runs the request on an async worker: anything that may block or take
/// long ends the run with [`Outcome::Offload`] instead (caches filled by
/// a blocking run let later requests stay inline).
pub fn run_inline(site: &Site, head: &RequestHead, conn: &ConnInfo) -> Outcome {
    run_with(site, head, conn, None, Mode::Inline).0
}

/// Where a run happens, which sets its budget.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// On an async worker: a slice of the budget, no blocking work.
    Inline,
    /// On a blocking thread because the inline run used its slice.
    Moved,
    /// On a blocking thread for blocking work, or in `explain`.
    Blocking,
}

/// [`run`] recording into `trace` what each phase did (`htgate explain`).
pub fn run_traced(
    site: &Site,
    head: &RequestHead,
    conn: &ConnInfo,
    trace: Option<super::trace::Trace>,
) -> (Outcome, Option<super::trace::Trace>) {
    run_with(site, head, conn, trace, Mode::Blocking)
}

fn run_with<'a>(
    site: &'a Site,
    head: &'a RequestHead,
    conn: &ConnInfo,
    trace: Option<super::trace::Trace>,
    mode: Mode,
) -> (Outcome, Option<super::trace::Trace>) {
    let budget = site.limits.budget;
    let limit = match mode {
        // Past the slice the run goes on off the worker (see below).
        Mode::Inline => budget.min(htgate_util::budget::INLINE_SLICE),
        Mode::Moved => budget,
        // Off the async workers (the blocking pool, `explain`) a request
        // may do more: a listing of thousands of entries is thousands of
        // sub-requests.
        Mode::Blocking => budget.saturating_mul(htgate_util::budget::BLOCKING_FACTOR),
    };
    let inline = mode == Mode::Inline;
    let sliced = inline && limit < budget;
    let meter = if inline {
        htgate_util::budget::Scope::enter_sliced(limit, htgate_util::budget::INLINE_TIME)
    } else {
        htgate_util::budget::Scope::enter(limit)
    };
    let mut headers_in = std::borrow::Cow::Borrowed(&head.headers);
    // A trusted proxy's word on HTTPS makes this an HTTPS request.
    let https = conn.tls || conn.proxied_https;
    if !site.pass_client_https_headers && !conn.trusted_proxy {
        // SECURITY: a client must not be able to claim HTTPS; htgate is the
        // TLS front, so it sets these itself.
        // One pass over the (few) fields instead of four hashed removals
        // on every request, where they are almost never present.
        const CLAIMS: [&str; 4] = ["https", "x-forwarded-proto", "x-forwarded-ssl", "forwarded"];
        if headers_in.keys().any(|k| CLAIMS.contains(&k.as_str())) {
            for name in CLAIMS {
                headers_in.to_mut().remove(name);
            }
        }
    }
    if https && (conn.trusted_proxy || !site.pass_client_https_headers) {
        // What hosting recipes test (`%{HTTP:HTTPS}`,
        // `%{HTTP:X-Forwarded-Proto}`), whichever signal the proxy used.
        let h = headers_in.to_mut();
        h.insert("https", HttpValue::from_static("on"));
        h.insert("x-forwarded-proto", HttpValue::from_static("https"));
    }
    // An absolute-form target's (or HTTP/2's) authority wins over `Host`
    // (RFC 9112 §3.2.2), as in routing (`hosting::request_host`).
    let host_raw = head
        .authority
        .clone()
        .or_else(|| {
            headers_in
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_else(|| site.server_names.first().cloned().unwrap_or_default());
    let (server_name, port) = split_host(&host_raw);
    let default_port = if conn.proxied_https {
        // The port the client used is the proxy's: its
        // `X-Forwarded-Port`, else HTTPS's own.
        headers_in
            .get("x-forwarded-port")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u16>().ok())
            .filter(|p| *p != 0)
            .unwrap_or(443)
    } else if https {
        site.https_port
    } else {
        site.http_port
    };
    let mut main = Main {
        site,
        method: head.method.as_str().to_string(),
        protocol: head.protocol.clone(),
        the_request: {
            // Not format!: this runs for every request.
            let method = head.method.as_str();
            let mut line =
                String::with_capacity(method.len() + head.target.len() + head.protocol.len() + 2);
            line.push_str(method);
            line.push(' ');
            line.push_str(&head.target);
            line.push(' ');
            line.push_str(&head.protocol);
            line
        },
        headers_in,
        tls: https,
        remote: conn.remote,
        local: conn.local,
        server_name: if server_name.is_empty() {
            site.server_names.first().cloned().unwrap_or_default()
        } else {
            server_name
        },
        server_port: port.unwrap_or(default_port),
        err_headers_out: Vec::new(),
        cookies_set: Vec::new(),
        request_time: std::time::SystemTime::now(),
        htaccess_seen: Default::default(),
        trace,
        user: None,
        budget_at: None,
        inline,
        offload: None,
    };
    let mut outcome = match Req::new(site, &head.target) {
        Ok(mut r) => main.run_chain(&mut r),
        Err(stop) => main.error_outcome(None, stop),
    };
    // Whatever the run decided, a spent budget is a 500: a rule list cut
    // short must not serve what its remaining rules would have denied.
    let spent = meter.exhausted();
    if spent == Some(htgate_util::budget::Work::Time) || (sliced && spent.is_some()) {
        // Not a refusal: the worker is needed elsewhere; the rest of the
        // request's budget is spent at a lower priority.
        outcome = Outcome::Offload(LONG_RUN);
    } else if let Some(work) = meter.exhausted() {
        let at = main
            .budget_at
            .as_deref()
            .unwrap_or("the request's processing");
        super::limits::budget_exhausted(site, conn, head, work, at);
        outcome = main.error_outcome(None, Stop::early(500));
    } else if let Some(reason) = main.offload {
        outcome = Outcome::Offload(reason);
    }
    (outcome, main.trace.take())
}

fn split_host(host: &str) -> (String, Option<u16>) {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((h, p)) = rest.split_once(']') {
            let port = p.strip_prefix(':').and_then(|p| p.parse().ok());
            return (h.to_ascii_lowercase(), port);
        }
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => {
            (h.to_ascii_lowercase(), p.parse().ok())
        }
        _ => (host.to_ascii_lowercase(), None),
    }
}

impl<'a> Main<'a> {
    /// Processes `r` and follows internal redirects until a handler answers.
    fn run_chain(&mut self, r: &mut Req) -> Outcome {
        loop {
            match self.process(r) {
                Err(stop) => return self.error_outcome(Some(r), stop),
                Ok(()) => match r.handler.clone() {
                    Handler::Redirect(url) => match self.internal_redirect(r, &url) {
                        Ok(next) => *r = next,
                        Err(stop) => return self.error_outcome(Some(r), stop),
                    },
                    Handler::Named(_) | Handler::Default => return self.default_handler(r),
                },
            }
        }
    }

    /// `internal_internal_redirect`: a fresh request for `url` that keeps
    /// the status, the environment (as `REDIRECT_*`) and, where mod_rewrite
    /// asked for it, Vary.
    fn internal_redirect(&mut self, r: &Req, url: &str) -> Result<Req, Stop> {
        let mut new = Req::new(self.site, url)?;
        new.status = r.status;
        new.redirects = r.redirects + 1;
        new.end = r.end;
        let mut env: Vec<(String, String)> = r
            .env
            .iter()
            .map(|(k, v)| (format!("REDIRECT_{k}"), v.clone()))
            .collect();
        env.push(("REDIRECT_STATUS".into(), r.status.to_string()));
        env.push(("REDIRECT_URL".into(), r.uri.clone()));
        if let Some(q) = &r.args {
            env.push(("REDIRECT_QUERY_STRING".into(), q.clone()));
        }
        new.env = env;
        if r.keeps_vary {
            new.vary = r.vary.clone();
            new.keeps_vary = true;
        }
        if new.redirects > super::request::MAX_RECURSION {
            tracing::error!(
                "request exceeded the limit of {} internal redirects due to probable configuration error",
                super::request::MAX_RECURSION
            );
            return Err(Stop::early(500));
        }
        Ok(new)
    }

    /// The handler phase: PHP for a PHP handler on a site with PHP-FPM,
    /// else Apache's default handler.
    fn default_handler(&mut self, r: &mut Req) -> Outcome {
        if self.site.php.is_some() && r.finfo != FileKind::Dir {
            let php = super::php::effective_handler(r)
                .is_some_and(|h| super::php::handler_is_php(&h))
                && !super::php::engine_off(&r.conf.php_values);
            if php {
                return self.php_outcome(r);
            }
        }
        self.static_handler(r)
    }

    fn php_outcome(&mut self, r: &mut Req) -> Outcome {
        let php_value = super::php::php_value_param(&r.conf.php_values);
        let params = super::php::cgi_params(self, r, php_value);
        let mut headers: Vec<(String, String)> = r.headers_out.clone();
        headers.extend(self.err_headers_out.iter().cloned());
        let conf = r.conf.clone();
        let mut actions = Vec::new();
        for a in conf.headers.iter() {
            if !self.header_cond(r, &a.cond) {
                continue;
            }
            let value = match &a.value {
                Some(v) => match self.format_value(r, v) {
                    Some(s) => Some(sanitize_header_value(&s).into_owned()),
                    None => continue,
                },
                None => None,
            };
            actions.push((a.clone(), value));
        }
        let mut debug = Vec::new();
        self.debug_headers(r, &mut debug);
        Outcome::Php(Box::new(PhpCall {
            params,
            default_status: r.status,
            headers,
            actions,
            headers_in: self.headers_in.clone().into_owned(),
            expires: conf.expires.clone(),
            script_mtime: r.meta.as_ref().and_then(|m| m.modified().ok()),
            vary: r.vary.clone(),
            debug,
            filter: OutputFilter::for_request(r, self.site.cache.modules().deflate),
        }))
    }

    /// Apache's default handler.
    fn static_handler(&mut self, r: &mut Req) -> Outcome {
        let m = self.method.as_str();
        if !matches!(m, "GET" | "HEAD" | "POST") {
            if m == "OPTIONS" {
                // ap_send_http_options: the type the file would have is
                // kept (core.c default_handler answers OPTIONS before it
                // looks at the file).
                let content_type = self.final_content_type(r);
                let mut headers = self.success_headers(r, content_type.as_deref());
                if let Some(ct) = content_type {
                    headers.push(("Content-Type".into(), ct));
                }
                headers.push(("Allow".into(), DEFAULT_HANDLER_ALLOW.into()));
                return Outcome::Plain {
                    status: 200,
                    headers,
                    body: bytes::Bytes::new(),
                };
            }
            // ap_send_error_response adds Allow (make_allow) to a 405.
            let mut outcome = self.error_outcome(Some(r), Stop::status(405));
            if let Outcome::Plain { headers, .. } = &mut outcome {
                headers.push(("Allow".into(), DEFAULT_HANDLER_ALLOW.into()));
            }
            return outcome;
        }
        match r.finfo {
            // A directory whose handler is not mod_autoindex (a SetHandler
            // such as Drupal's) reaches the default handler, which refuses
            // to serve a directory with 404 (AH00128); mod_autoindex
            // without `Options Indexes` answers 403.
            FileKind::Dir if super::php::effective_handler(r).is_some() => {
                self.error_outcome(Some(r), Stop::status(404))
            }
            FileKind::Dir => self.directory_listing(r),
            FileKind::Missing => self.error_outcome(Some(r), Stop::status(404)),
            FileKind::Other => self.error_outcome(Some(r), Stop::status(403)),
            FileKind::File => {
                if !r.path_info.is_empty() && r.conf.accept_path_info != Some(true) {
                    return self.error_outcome(Some(r), Stop::status(404));
                }
                let Some(meta) = r.meta.clone() else {
                    return self.error_outcome(Some(r), Stop::status(404));
                };
                if self.site.php_source_denied && super::php::is_php_file_name(&r.filename) {
                    // SECURITY: PHP source (database passwords in
                    // wp-config.php) is never sent by a site without PHP
                    tracing::warn!("{}: PHP file refused: this site has no php_fpm", r.filename);
                    return self.error_outcome(Some(r), Stop::status(403));
                }
                let content_type = self.final_content_type(r);
                let headers = self.success_headers(r, content_type.as_deref());
                let file = Outcome::File {
                    path: r.filename.clone(),
                    meta,
                    content_type,
                    status: r.status,
                    headers,
                };
                match OutputFilter::for_request(r, self.site.cache.modules().deflate) {
                    Some(f) => Outcome::Filtered(Box::new(file), f),
                    None => file,
                }
            }
        }
    }

    /// mod_autoindex: a listing with `Options Indexes`, else 403.
    fn directory_listing(&mut self, r: &mut Req) -> Outcome {
        if r.conf.options & super::config::OPT_INDEXES == 0 {
            return self.error_outcome(Some(r), Stop::status(403));
        }
        if self.method != "GET" && self.method != "HEAD" {
            // mod_autoindex declines anything but GET; the default handler
            // then refuses to serve a directory
            return self.error_outcome(Some(r), Stop::status(404));
        }
        let cfg = r.conf.index.clone();
        let dir = r.filename.trim_end_matches('/').to_string();
        let key = r.meta.as_ref().map(|m| {
            use std::os::unix::fs::MetadataExt;
            super::listing_cache::Key {
                dir: dir.clone(),
                ino: m.ino(),
                mtime: m.modified().ok(),
                query: r.args.clone(),
                conf: Arc::as_ptr(&r.conf) as usize,
                user: self.user.clone(),
            }
        });
        let cached = key.as_ref().and_then(super::listing_cache::get);
        let body = match cached {
            Some(page) => page,
            // A sub-request per entry: the blocking pool's work.
            None if self.needs_blocking("a directory listing") => {
                return self.error_outcome(Some(r), Stop::status(500));
            }
            None => match self.render_listing(r, &dir, &cfg) {
                Some(page) => {
                    if let Some(key) = key {
                        super::listing_cache::put(key, page.clone());
                    }
                    page
                }
                None => return self.error_outcome(Some(r), Stop::status(403)),
            },
        };
        let ct = cfg.content_type();
        let mut headers = self.success_headers(r, Some(&ct));
        headers.push(("Content-Type".into(), ct));
        let page = Outcome::Plain {
            status: 200,
            headers,
            body,
        };
        match OutputFilter::for_request(r, self.site.cache.modules().deflate) {
            Some(f) => Outcome::Filtered(Box::new(page), f),
            None => page,
        }
    }

    /// mod_autoindex's page for `dir` (`None`: it cannot be read).  At
    /// most [`MAX_LISTING_ENTRIES`] entries are looked at; the page says
    /// when there were more.
    fn render_listing(
        &mut self,
        r: &mut Req,
        dir: &str,
        cfg: &htgate_content::autoindex::IndexConfig,
    ) -> Option<bytes::Bytes> {
        use htgate_content::autoindex;
        let read = std::fs::read_dir(dir).ok()?;
        let mut names: Vec<String> = read
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .take(MAX_LISTING_ENTRIES + 1)
            .collect();
        let truncated = names.len() > MAX_LISTING_ENTRIES;
        if truncated {
            names.truncate(MAX_LISTING_ENTRIES);
            htgate_telemetry::logs::refusal::refused(
                &self.site.limits.name,
                htgate_telemetry::logs::refusal::Reason::ListingEntries,
                self.remote,
                &format!(
                    "{dir}: more than {MAX_LISTING_ENTRIES} entries; the listing shows the first {MAX_LISTING_ENTRIES}"
                ),
            );
        }
        names.sort();
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            // `ap_sub_req_lookup_dirent`: an entry is listed only if a
            // request for it would be answered (so `.ht*` files, `<Files>`
            // denials and refused symlinks never show; 401/403 ones only
            // with ShowForbidden), and only files and directories.
            let path = format!("{dir}/{name}");
            let (status, rr) = match self.subrequest_file(r, &path) {
                Ok(rr) => (rr.status, Some(rr)),
                Err(stop) => (stop.status, None),
            };
            let shown = (200..400).contains(&status)
                || (cfg.options.show_forbidden() && (status == 401 || status == 403));
            if !shown {
                continue;
            }
            let meta = std::fs::metadata(&path).ok();
            let Some(meta) = meta.filter(|m| m.is_file() || m.is_dir()) else {
                continue;
            };
            let description = if cfg.options.scan_html_titles()
                && meta.is_file()
                && rr
                    .as_ref()
                    .and_then(|x| x.content_type.as_deref())
                    .is_some_and(|t| t.starts_with("text/html"))
            {
                read_head(&path).and_then(|h| autoindex::scan_html_title(&h))
            } else {
                None
            };
            entries.push(autoindex::Entry {
                name,
                is_dir: meta.is_dir(),
                size: Some(meta.len()),
                modified: meta.modified().ok(),
                description,
                content_type: rr.as_ref().and_then(|x| x.content_type.clone()),
                content_encoding: None,
            });
        }
        let readme = truncated.then(|| {
            autoindex::Insert::Text(
                format!(
                    "This folder has more than {MAX_LISTING_ENTRIES} entries: \
                     only the first {MAX_LISTING_ENTRIES} are listed.\n"
                )
                .into_bytes(),
            )
        });
        let listing = autoindex::Listing {
            dir_uri: &r.uri,
            query: r.args.as_deref(),
            entries,
            header: None,
            readme,
            signature: None,
        };
        Some(bytes::Bytes::from(autoindex::render_listing(&listing, cfg)))
    }

    fn final_content_type(&self, r: &Req) -> Option<String> {
        let mut ct = r.content_type.clone();
        for m in r.conf.mime.iter() {
            if let Some(Some(cs)) = &m.default_charset {
                if let Some(t) = &ct {
                    if (t.starts_with("text/plain") || t.starts_with("text/html"))
                        && !t.contains("charset")
                    {
                        ct = Some(format!("{t}; charset={cs}"));
                    }
                }
            }
        }
        ct
    }

    /// Headers of a successful answer: mod_rewrite's Vary, cookies,
    /// mod_expires, mod_headers (both tables), debug headers.
    fn success_headers(
        &mut self,
        r: &mut Req,
        content_type: Option<&str>,
    ) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = r.headers_out.clone();
        out.extend(self.err_headers_out.iter().cloned());
        // mod_rewrite notes Vary in the fixups, before the output filters
        merge_vary(&mut out, &r.vary);
        self.apply_expires(r, content_type, &mut out);
        let conf = r.conf.clone();
        for a in conf.headers.iter() {
            self.apply_header_action(r, a, &mut out);
        }
        fix_vary(&mut out);
        self.debug_headers(r, &mut out);
        out
    }

    fn debug_headers(&self, r: &Req, out: &mut Vec<(String, String)>) {
        if self.site.debug_headers {
            out.push(("X-Debug-Final-Uri".into(), escape::escape_uri(&r.uri)));
            out.push((
                "X-Debug-Final-Query".into(),
                escape::escape_uri(r.args.as_deref().unwrap_or("")),
            ));
        }
    }

    /// mod_expires: `Cache-Control: max-age` and `Expires` on success.
    fn apply_expires(&self, r: &Req, content_type: Option<&str>, out: &mut Vec<(String, String)>) {
        if r.status >= 400 {
            return;
        }
        let mtime = r.meta.as_ref().and_then(|m| m.modified().ok());
        expires_headers(&r.conf.expires, mtime, content_type, out);
    }

    fn format_value(&mut self, r: &mut Req, v: &HeaderValue) -> Option<String> {
        match v {
            HeaderValue::Format(pieces) => {
                let mut s = String::new();
                for p in pieces {
                    match p {
                        FmtPiece::Lit(l) => s.push_str(l),
                        FmtPiece::Env(n) => match r.env_get(n) {
                            Some(v) => s.push_str(v),
                            None => s.push_str("(null)"),
                        },
                        // mod_ssl's lookup answers `HTTPS` on every
                        // connection (`off` without TLS); the other
                        // variables htgate does not provide.
                        FmtPiece::Ssl(n) if n.eq_ignore_ascii_case("HTTPS") => {
                            s.push_str(if self.tls { "on" } else { "off" });
                        }
                        FmtPiece::Ssl(_) => s.push_str("(null)"),
                        FmtPiece::Load(t) => s.push_str(&t.render()),
                        FmtPiece::Time => {
                            let us = self
                                .request_time
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|d| d.as_micros())
                                .unwrap_or(0);
                            s.push_str(&format!("t={us}"));
                        }
                        FmtPiece::Duration => {
                            let d = self
                                .request_time
                                .elapsed()
                                .map(|d| d.as_micros())
                                .unwrap_or(0);
                            s.push_str(&format!("D={d}"));
                        }
                    }
                }
                Some(s)
            }
            HeaderValue::Expr(e) => self.eval_string_expr(r, e).ok(),
        }
    }

    fn header_cond(&mut self, r: &mut Req, c: &HeaderCond) -> bool {
        match c {
            HeaderCond::None => true,
            HeaderCond::Env { negate, name } => r.env_get(name).is_some() != *negate,
            HeaderCond::Expr(e) => self.eval_expr(r, e).map(|o| o.value).unwrap_or(false),
        }
    }

    fn apply_header_action(
        &mut self,
        r: &mut Req,
        a: &HeaderAction,
        out: &mut Vec<(String, String)>,
    ) {
        if !self.header_cond(r, &a.cond) {
            return;
        }
        let value = match &a.value {
            Some(v) => match self.format_value(r, v) {
                Some(s) => Some(sanitize_header_value(&s).into_owned()),
                None => return,
            },
            None => None,
        };
        apply_op(a, value, out, &self.headers_in);
    }

    /// Headers kept on an error or redirect: cookies (err_headers_out) and
    /// `Header always` actions.
    fn error_headers(&mut self, r: Option<&mut Req>, configured: bool) -> Vec<(String, String)> {
        self.error_headers_with(r, configured, Vec::new())
    }

    /// [`Self::error_headers`] with headers set before mod_headers runs
    /// (mod_expires on redirects).
    fn error_headers_with(
        &mut self,
        r: Option<&mut Req>,
        configured: bool,
        before: Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        let mut out = self.err_headers_out.clone();
        out.extend(before);
        if let Some(r) = r {
            if configured {
                let conf = r.conf.clone();
                for a in conf.headers.iter().filter(|a| a.always) {
                    self.apply_header_action(r, a, &mut out);
                }
            }
            self.debug_headers(r, &mut out);
        }
        out
    }

    /// `ap_die`: an error or redirect answer, with `ErrorDocument`.
    pub(crate) fn error_outcome(&mut self, r: Option<&mut Req>, stop: Stop) -> Outcome {
        let status = stop.status;
        let method = Method::from_bytes(self.method.as_bytes()).unwrap_or(Method::GET);
        if let Some(loc) = &stop.location {
            // mod_expires also runs on redirects (only errors are skipped);
            // the answer is Apache's redirect page, typed text/html.
            let mut expires = Vec::new();
            if let (Some(req), true) = (&r, stop.configured) {
                let mtime = req.meta.as_ref().and_then(|m| m.modified().ok());
                expires_headers(
                    &req.conf.expires,
                    mtime,
                    Some(htgate_content::status_page::ERROR_CONTENT_TYPE),
                    &mut expires,
                );
            }
            let mut headers = self.error_headers_with(r, stop.configured, expires);
            headers.push(("Location".into(), sanitize_header_value(loc).into_owned()));
            // 304 and 204 have no body, so no type (Apache sends none).
            if status != 304 && status != 204 {
                push_error_content_type(&mut headers);
            }
            let body = htgate_content::status_page::error_body(
                StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND),
                Some(loc),
                &method,
            );
            return Outcome::Plain {
                status,
                headers,
                body,
            };
        }
        let doc = match (&r, stop.configured) {
            (Some(req), true) => req.conf.error_documents.get(&status).cloned(),
            _ => None,
        };
        match doc {
            Some(ErrorDocument::Remote(url)) => {
                let mut headers = self.error_headers(r, stop.configured);
                headers.push(("Location".into(), sanitize_header_value(&url).into_owned()));
                push_error_content_type(&mut headers);
                let body =
                    htgate_content::status_page::error_body(StatusCode::FOUND, Some(&url), &method);
                Outcome::Plain {
                    status: 302,
                    headers,
                    body,
                }
            }
            Some(ErrorDocument::Text(text)) => {
                // `ap_send_error_response` types the page before it
                // writes the custom text.
                let mut headers = self.error_headers(r, stop.configured);
                push_error_content_type(&mut headers);
                Outcome::Plain {
                    status,
                    headers,
                    body: bytes::Bytes::from(text),
                }
            }
            Some(ErrorDocument::Local(path)) => {
                let Some(orig) = r else {
                    return self.plain_error(None, status, false);
                };
                if orig.redirects >= super::request::MAX_RECURSION {
                    return self.plain_error(Some(orig), status, true);
                }
                let mut er = orig.clone();
                er.status = status;
                let next = self.internal_redirect(&er, &path);
                match next {
                    Ok(mut nr) => {
                        nr.status = status;
                        match self.process(&mut nr) {
                            Ok(())
                                if self.site.php.is_some()
                                    && super::php::effective_handler(&nr)
                                        .is_some_and(|h| super::php::handler_is_php(&h)) =>
                            {
                                self.php_outcome(&mut nr)
                            }
                            Ok(()) if nr.finfo == FileKind::File => {
                                let ct = self.final_content_type(&nr);
                                // the error document's own request runs the
                                // output filters: its `Header set` lines
                                // apply too (mod_expires skips errors)
                                let mut headers = self.success_headers(&mut nr, ct.as_deref());
                                headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
                                match nr.meta.clone() {
                                    Some(meta) => Outcome::File {
                                        path: nr.filename.clone(),
                                        meta,
                                        content_type: ct,
                                        status,
                                        headers,
                                    },
                                    None => self.plain_error(Some(orig), status, true),
                                }
                            }
                            _ => self.plain_error(Some(orig), status, true),
                        }
                    }
                    Err(_) => self.plain_error(Some(orig), status, true),
                }
            }
            Some(ErrorDocument::Default) | None => self.plain_error(r, status, stop.configured),
        }
    }

    fn plain_error(&mut self, r: Option<&mut Req>, status: u16, configured: bool) -> Outcome {
        let method = Method::from_bytes(self.method.as_bytes()).unwrap_or(Method::GET);
        let mut headers = self.error_headers(r, configured);
        push_error_content_type(&mut headers);
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = htgate_content::status_page::error_body(code, None, &method);
        Outcome::Plain {
            status,
            headers,
            body,
        }
    }
}

/// Apache's status and redirect pages (`ap_send_error_response`) are
/// typed `text/html; charset=iso-8859-1`, redirects included.
fn push_error_content_type(headers: &mut Vec<(String, String)>) {
    headers.push((
        "Content-Type".into(),
        htgate_content::status_page::ERROR_CONTENT_TYPE.into(),
    ));
}

/// Entries of one directory listing at most (SECURITY.md, "Limits"): a
/// folder of 50,000 files must not cost 50,000 sub-requests per request.
pub(crate) const MAX_LISTING_ENTRIES: usize = 10_000;

/// The first bytes of a file (for `ScanHTMLTitles`).
fn read_head(path: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut buf = vec![0u8; htgate_content::autoindex::TITLE_SCAN_BYTES];
    let n = f.read(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn deflate_env(r: &Req) -> DeflateEnv {
    DeflateEnv {
        no_gzip: r.env_get("no-gzip").is_some(),
        gzip_only_text_html: r.env_get("gzip-only-text/html") == Some("1"),
        force_gzip: r.env_get("force-gzip").is_some(),
    }
}

/// mod_expires on an answer: `Cache-Control: max-age` and `Expires` from
/// the rule for its type (or ExpiresDefault), based on the access time or
/// the file's modification time.
pub(crate) fn expires_headers(
    exp: &super::config::ExpiresConf,
    mtime: Option<std::time::SystemTime>,
    content_type: Option<&str>,
    out: &mut Vec<(String, String)>,
) {
    if exp.active != Some(true) {
        return;
    }
    let base_type = content_type.map(|t| {
        t.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    let rule = base_type
        .as_ref()
        .and_then(|t| exp.by_type.iter().find(|(x, _)| x == t).map(|(_, r)| *r))
        .or(exp.default);
    let Some(rule) = rule else { return };
    let now = std::time::SystemTime::now();
    let base = if rule.from_access {
        now
    } else {
        // "modification plus …" needs a file on disk (mod_expires
        // declines otherwise)
        let Some(m) = mtime else { return };
        m
    };
    let expires = base + std::time::Duration::from_secs(rule.seconds.max(0) as u64);
    let max_age = expires
        .duration_since(now)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    out.retain(|(k, _)| !k.eq_ignore_ascii_case("expires"));
    out.push(("Cache-Control".into(), format!("max-age={max_age}")));
    out.push(("Expires".into(), httpdate::fmt_http_date(expires)));
}

/// Merges `extra` Vary tokens into the headers (one `Vary`, no
/// duplicates, the existing order first).
pub fn merge_vary(out: &mut Vec<(String, String)>, extra: &[String]) {
    if extra.is_empty() {
        return;
    }
    out.push(("Vary".into(), extra.join(",")));
    fix_vary(out);
}

/// `fixup_vary` (http_filters.c): every Vary value split on commas,
/// duplicates dropped case-insensitively keeping the first spelling, one
/// header joined with `,`.
pub(crate) fn fix_vary(out: &mut Vec<(String, String)>) {
    if out
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("vary"))
        .count()
        == 0
    {
        return;
    }
    let existing: Vec<String> = out
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("vary"))
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    out.retain(|(k, _)| !k.eq_ignore_ascii_case("vary"));
    let mut tokens: Vec<String> = Vec::new();
    for t in existing.iter() {
        if !t.is_empty() && !tokens.iter().any(|x| x.eq_ignore_ascii_case(t)) {
            tokens.push(t.clone());
        }
    }
    if !tokens.is_empty() {
        out.push(("Vary".into(), tokens.join(",")));
    }
}

/// The headers of a PHP answer: PHP's own, then what Apache's output
/// filters add in their order (mod_expires unless PHP set `Expires`,
/// mod_headers, mod_rewrite's Vary, the debug headers).
pub fn finish_php_headers(
    call: &PhpCall,
    php_headers: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let mut out = call.headers.clone();
    out.extend(php_headers);
    if !out.iter().any(|(k, _)| k.eq_ignore_ascii_case("expires")) {
        let ct = out
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.clone());
        expires_headers(&call.expires, call.script_mtime, ct.as_deref(), &mut out);
    }
    merge_vary(&mut out, &call.vary);
    for (a, value) in &call.actions {
        apply_op(a, value.clone(), &mut out, &call.headers_in);
    }
    fix_vary(&mut out);
    out.extend(call.debug.iter().cloned());
    out
}

/// SECURITY: no CR, LF or NUL ever reaches a response header
/// (CVE-2023-25690 class); they are replaced by spaces.
pub fn sanitize_header_value(s: &str) -> std::borrow::Cow<'_, str> {
    // Nearly every value is clean: no copy then (this runs for every
    // header of every answer).
    if !s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if c == '\r' || c == '\n' || c == '\0' {
                    ' '
                } else {
                    c
                }
            })
            .collect(),
    )
}

fn apply_op(
    a: &HeaderAction,
    value: Option<String>,
    out: &mut Vec<(String, String)>,
    headers_in: &HeaderMap,
) {
    let name = a.name.as_str();
    let same = |k: &String| k.eq_ignore_ascii_case(name);
    match a.op {
        // apr_table_setn: the first entry takes the value in place, later
        // ones go.
        HeaderOp::Set => match (out.iter().position(|(k, _)| same(k)), value) {
            (Some(pos), Some(v)) => {
                out[pos].1 = v;
                let mut i = 0;
                out.retain(|(k, _)| {
                    i += 1;
                    i - 1 <= pos || !same(k)
                });
            }
            (_, v) => {
                out.retain(|(k, _)| !same(k));
                if let Some(v) = v {
                    out.push((name.to_string(), v));
                }
            }
        },
        // apr_table_mergen: `, value` is appended to the first entry of
        // that name only; other entries stay as they are.
        HeaderOp::Append => {
            if let Some(v) = value {
                match out.iter_mut().find(|(k, _)| same(k)) {
                    Some(e) => e.1 = format!("{}, {v}", e.1),
                    None => out.push((name.to_string(), v)),
                }
            }
        }
        // mod_headers.c do_headers_fixup hdr_merge: the first entry's
        // tokens are checked; merged like append when the value is new.
        HeaderOp::Merge => {
            if let Some(v) = value {
                match out.iter_mut().find(|(k, _)| same(k)) {
                    Some(e) => {
                        let present = list_tokens(&e.1).any(|t| t == v.trim());
                        if !present {
                            e.1 = format!("{}, {v}", e.1);
                        }
                    }
                    None => out.push((name.to_string(), v)),
                }
            }
        }
        HeaderOp::Add => {
            if let Some(v) = value {
                out.push((name.to_string(), v));
            }
        }
        HeaderOp::Unset => out.retain(|(k, _)| !same(k)),
        HeaderOp::SetIfEmpty => {
            if !out.iter().any(|(k, _)| same(k)) {
                if let Some(v) = value {
                    out.push((name.to_string(), v));
                }
            }
        }
        HeaderOp::Edit | HeaderOp::EditAll => {
            let (Some(re), Some(repl)) = (&a.edit, value) else {
                return;
            };
            for (k, v) in out.iter_mut() {
                if !same(k) {
                    continue;
                }
                *v = edit_value(v, re, &repl, a.op == HeaderOp::EditAll);
            }
        }
        HeaderOp::Echo => {
            // `Header echo regex`: copy matching request headers.
            if let Some(p) = &a.edit {
                for (k, v) in headers_in.iter() {
                    if p.is_match(k.as_str()) {
                        out.push((
                            k.as_str().to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        ));
                    }
                }
            }
        }
        HeaderOp::Note => {}
    }
}

/// The comma-separated elements of a header value, trimmed, with commas
/// inside quoted strings kept (`"a, b", c` is two elements), as
/// mod_headers' merge compares them.
fn list_tokens(v: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in v.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(v[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(v[start..].trim());
    parts.into_iter()
}

fn edit_value(v: &str, re: &super::pattern::Pattern, repl: &str, all: bool) -> String {
    // The regex works on bytes (as PCRE does), so a match may end inside a
    // UTF-8 sequence: build the result as bytes and never slice `v` off a
    // character boundary.
    let vb = v.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(v.len());
    let mut pos = 0;
    while let Some(caps) = re.captures(&v[pos..]) {
        let Some((s, e)) = caps.first().copied().flatten() else {
            break;
        };
        out.extend_from_slice(&vb[pos..pos + s]);
        out.extend_from_slice(expand_dollar_refs(repl, &v[pos..], &caps).as_bytes());
        let mut next = pos + e;
        if e == s {
            // an empty match: keep the next character and go on after it
            if next >= vb.len() {
                pos = vb.len();
                break;
            }
            out.push(vb[next]);
            next += 1;
        }
        while next < vb.len() && !v.is_char_boundary(next) {
            out.push(vb[next]);
            next += 1;
        }
        pos = next;
        if !all {
            break;
        }
    }
    out.extend_from_slice(&vb[pos..]);
    String::from_utf8_lossy(&out).into_owned()
}

/// `$N` in a replacement: capture N of the match in `subject`.
fn expand_dollar_refs(repl: &str, subject: &str, caps: &super::pattern::Captures) -> String {
    let mut out = String::with_capacity(repl.len());
    let mut chars = repl.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek().and_then(|d| d.to_digit(10))) {
            ('$', Some(n)) => {
                chars.next();
                out.push_str(&super::pattern::capture_text(subject, caps, n as usize));
            }
            _ => out.push(c),
        }
    }
    out
}

/// `RequestHeader` actions change the request headers the rest of the
/// request (and PHP) sees.
pub(crate) fn apply_request_header(main: &mut Main<'_>, r: &mut Req, a: &HeaderAction) {
    let cond = match &a.cond {
        HeaderCond::None => true,
        HeaderCond::Env { negate, name } => r.env_get(name).is_some() != *negate,
        HeaderCond::Expr(e) => main.eval_expr(r, e).map(|o| o.value).unwrap_or(false),
    };
    if !cond {
        return;
    }
    let mut list: Vec<(String, String)> = main
        .headers_in
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let value = match &a.value {
        Some(HeaderValue::Format(pieces)) => {
            let mut s = String::new();
            for p in pieces {
                match p {
                    FmtPiece::Lit(l) => s.push_str(l),
                    FmtPiece::Env(n) => s.push_str(r.env_get(n).unwrap_or("(null)")),
                    FmtPiece::Load(t) => s.push_str(&t.render()),
                    _ => {}
                }
            }
            Some(sanitize_header_value(&s).into_owned())
        }
        Some(HeaderValue::Expr(e)) => main
            .eval_string_expr(r, e)
            .ok()
            .map(|s| sanitize_header_value(&s).into_owned()),
        None => None,
    };
    apply_op(a, value, &mut list, &HeaderMap::new());
    let mut map = HeaderMap::new();
    for (k, v) in list {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HttpValue::from_str(&v),
        ) {
            map.append(n, v);
        }
    }
    main.headers_in = std::borrow::Cow::Owned(map);
}

#[cfg(test)]
mod tests;
