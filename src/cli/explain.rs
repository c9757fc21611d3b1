//! `htgate explain URL`: runs one request through a site's `.htaccess`
//! files without a server or a network and shows what every directory,
//! rule, condition and flag did, then the answer.  Text for customers,
//! JSON (`--format json`) for control panels.
//!
//! The engine records the steps ([`htgate_engine::trace`]); this module
//! builds the site (quick mode's or the config's), plays config mode's front
//! steps (ACME path, `force_https`, trusted proxies, HSTS), and renders.

use htgate_engine::respond::{self, Outcome, RequestHead};
use htgate_engine::site::Site;
use htgate_engine::trace::{Trace, TraceEntry, TraceEvent};
use htgate_server::ConnInfo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Format {
    Text,
    Json,
}

#[derive(clap::Args, Debug, Clone)]
pub(super) struct ExplainArgs {
    /// The absolute URL, e.g. `https://www.example.com/blog/?p=1`: the
    /// scheme decides TLS, the host is the Host header (and SNI).
    pub url: String,
    /// The document root (a quick-mode site).
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    pub root: Option<PathBuf>,
    /// A config file: the site is chosen by the URL's host, as config mode
    /// does.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// The request method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// The client's address (REMOTE_ADDR; decides `Require ip` and whether
    /// a configured trusted proxy is talking).
    #[arg(long, default_value = "192.0.2.1")]
    pub from: IpAddr,
    /// `text` for people, `json` for control panels.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Quick mode: ServerName, then ServerAliases (default: the URL's host).
    #[arg(long, value_delimiter = ',', conflicts_with = "config")]
    pub server_name: Vec<String>,
    /// Quick mode: `.php` files go to PHP-FPM, as with `serve --php-fpm`
    /// (nothing is connected: the answer says which script would run).
    #[arg(long, value_name = "SOCKET", conflicts_with = "config")]
    pub php_fpm: Option<String>,
    /// Quick mode: client HTTPS headers are ordinary headers (as `serve
    /// --pass-client-https-headers`).
    #[arg(long, conflicts_with = "config")]
    pub pass_client_https_headers: bool,
}

/// The request as parsed from the command line.
struct Request {
    method: http::Method,
    tls: bool,
    /// Host header value (may carry a port).
    authority: String,
    host: String,
    port: Option<u16>,
    target: String,
    headers: http::HeaderMap,
}

fn parse_request(args: &ExplainArgs) -> Result<Request, String> {
    let uri: http::Uri = args
        .url
        .parse()
        .map_err(|e| format!("`{}` is not a URL: {e}", args.url))?;
    let tls = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(format!(
                "`{}`: give an absolute http:// or https:// URL",
                args.url
            ))
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("`{}` has no host", args.url))?;
    let target = uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let target = if target.is_empty() {
        "/".to_string()
    } else {
        target
    };
    let method = http::Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("`{}` is not a request method", args.method))?;
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(authority.as_str()) {
        headers.insert(http::header::HOST, v);
    }
    let mut replaced = Vec::new();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("-H `{h}`: write `Name: value`"))?;
        let name = http::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("-H `{h}`: bad header name"))?;
        let value = http::HeaderValue::from_str(value.trim())
            .map_err(|_| format!("-H `{h}`: bad header value"))?;
        // A header given on the command line replaces the URL's Host and
        // is repeatable otherwise (several `-H 'Cookie: …'`).
        if !replaced.contains(&name) {
            headers.remove(&name);
            replaced.push(name.clone());
        }
        headers.append(name, value);
    }
    Ok(Request {
        method,
        tls,
        authority: authority.as_str().to_string(),
        host: authority.host().trim_end_matches('.').to_ascii_lowercase(),
        port: authority.port_u16(),
        target,
        headers,
    })
}

/// The site a request runs in, and config mode's extras.
struct Chosen {
    site: std::sync::Arc<Site>,
    mode: &'static str,
    name: Option<String>,
    /// Config mode: what happens before the site's `.htaccess` files.
    hosted: Option<Front>,
}

struct Front {
    force_https: bool,
    hsts: Option<String>,
    https_port: u16,
    trusted_proxy: bool,
    /// `trusted_proxies`, to walk the forwarding headers as the server does.
    proxies: Vec<ipnet::IpNet>,
    acme: bool,
}

fn quick_site(args: &ExplainArgs, req: &Request, root: &std::path::Path) -> Result<Chosen, String> {
    let names = if args.server_name.is_empty() {
        vec![req.host.clone()]
    } else {
        args.server_name.clone()
    };
    let opts = htgate_hosting::quick::QuickOptions {
        root: root.to_path_buf(),
        http: SocketAddr::from(([127, 0, 0, 1], 80)),
        https: SocketAddr::from(([127, 0, 0, 1], 443)),
        cert: None,
        key: None,
        server_names: names,
        debug_headers: false,
        pass_client_https_headers: args.pass_client_https_headers,
        php_fpm: args.php_fpm.clone(),
        mime_types: None,
        http3: false,
        php: Default::default(),
    };
    let site = htgate_hosting::quick::site(&opts).map_err(|e| format!("{e:#}"))?;
    Ok(Chosen {
        site: std::sync::Arc::new(site),
        mode: "quick",
        name: None,
        hosted: None,
    })
}

fn config_site(path: &std::path::Path, req: &Request, from: IpAddr) -> Result<Chosen, String> {
    let config = htgate_hosting::config::Config::load(path).map_err(|e| e.to_string())?;
    // The ports the sites are known as: the first plain and TLS listeners'
    // (as `serve --config` after binding).
    let listeners = config.listeners();
    let port = |tls: bool, default: u16| {
        listeners
            .iter()
            .find(|(_, t)| *t == tls)
            .map(|(a, _)| a.port())
            .filter(|p| *p != 0)
            .unwrap_or(default)
    };
    let (http_port, https_port) = (port(false, 80), port(true, 443));
    let hosting = htgate_hosting::run::hosting(&config, http_port, https_port, None, None)
        .map_err(|e| format!("{e:#}"))?;
    let hs = hosting
        .site_for(Some(&req.host))
        .cloned()
        .ok_or_else(|| "the configuration has no sites".to_string())?;
    Ok(Chosen {
        site: hs.site.clone(),
        mode: "config",
        name: Some(hs.name.clone()),
        hosted: Some(Front {
            force_https: hs.force_https,
            hsts: hs
                .hsts
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            https_port: hosting.https_port,
            trusted_proxy: hosting.is_trusted(from),
            proxies: hosting.trusted_proxies.clone(),
            acme: config.file.acme.is_some(),
        }),
    })
}

/// The answer, in the terms `explain` shows.
struct Answer {
    kind: &'static str,
    status: u16,
    location: Option<String>,
    file: Option<String>,
    content_type: Option<String>,
    script: Option<String>,
    headers: Vec<(String, String)>,
    note: Option<String>,
}

impl Answer {
    fn plain(kind: &'static str, status: u16, note: String) -> Answer {
        Answer {
            kind,
            status,
            location: None,
            file: None,
            content_type: None,
            script: None,
            headers: Vec::new(),
            note: Some(note),
        }
    }

    fn from_outcome(o: &Outcome) -> Answer {
        match o {
            Outcome::File {
                path,
                content_type,
                status,
                headers,
                ..
            } => Answer {
                kind: "file",
                status: *status,
                location: None,
                file: Some(path.clone()),
                content_type: content_type.clone(),
                script: None,
                headers: headers.clone(),
                note: None,
            },
            Outcome::Plain {
                status, headers, ..
            } => {
                let location = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("location"))
                    .map(|(_, v)| v.clone());
                Answer {
                    kind: if location.is_some() {
                        "redirect"
                    } else {
                        "status"
                    },
                    status: *status,
                    location,
                    file: None,
                    content_type: None,
                    script: None,
                    headers: headers.clone(),
                    note: None,
                }
            }
            // explain runs with blocking allowed; kept for completeness
            Outcome::Offload(reason) => Answer {
                kind: "status",
                status: 503,
                location: None,
                file: None,
                content_type: None,
                script: None,
                headers: Vec::new(),
                note: Some(format!("needs the blocking pool: {reason}")),
            },
            Outcome::Filtered(inner, _) => {
                let mut a = Answer::from_outcome(inner);
                let note = "mod_deflate compresses it when the client accepts gzip";
                a.note = Some(match a.note {
                    Some(n) => format!("{n}; {note}"),
                    None => note.to_string(),
                });
                a
            }
            Outcome::Php(call) => {
                let param = |n: &str| {
                    call.params
                        .iter()
                        .find(|(k, _)| k == n)
                        .map(|(_, v)| v.clone())
                };
                Answer {
                    kind: "php",
                    status: call.default_status,
                    location: None,
                    file: None,
                    content_type: None,
                    script: param("SCRIPT_FILENAME"),
                    headers: call.headers.clone(),
                    note: param("SCRIPT_NAME").map(|s| {
                        let info = param("PATH_INFO").unwrap_or_default();
                        if info.is_empty() {
                            format!("SCRIPT_NAME {s}")
                        } else {
                            format!("SCRIPT_NAME {s}, PATH_INFO {info}")
                        }
                    }),
                }
            }
        }
    }

    fn json(&self) -> Value {
        json!({
            "kind": self.kind,
            "status": self.status,
            "location": self.location,
            "file": self.file,
            "content_type": self.content_type,
            "script": self.script,
            "headers": self.headers,
            "note": self.note,
        })
    }
}

/// Everything one explanation holds.
struct Explained {
    req: Request,
    from: IpAddr,
    url: String,
    chosen: Chosen,
    front: Vec<String>,
    trace: Option<Trace>,
    answer: Answer,
}

pub(super) fn run(args: &ExplainArgs) -> ExitCode {
    let explained = match explain(args) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut sources = Sources::default();
    match args.format {
        Format::Text => print!("{}", render_text(&explained, &mut sources)),
        Format::Json => {
            let v = render_json(&explained, &mut sources);
            match serde_json::to_string_pretty(&v) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}

fn explain(args: &ExplainArgs) -> Result<Explained, String> {
    let req = parse_request(args)?;
    let chosen = match (&args.root, &args.config) {
        (Some(root), _) => quick_site(args, &req, root)?,
        (None, Some(config)) => config_site(config, &req, args.from)?,
        (None, None) => return Err("give --root DIR or --config FILE".into()),
    };
    let mut front = Vec::new();
    let mut tls = req.tls;
    let mut trusted = false;
    let mut remote = args.from;
    let done = |front: Vec<String>, answer: Answer, chosen: Chosen, req: Request| Explained {
        req,
        from: args.from,
        url: args.url.clone(),
        chosen,
        front,
        trace: None,
        answer,
    };
    if let Some(f) = &chosen.hosted {
        if f.acme
            && req
                .target
                .starts_with(htgate_hosting::acme::CHALLENGE_PREFIX)
        {
            front.push("the path is an ACME HTTP-01 challenge: htgate answers it before any .htaccess (with the token of a pending order, else 404)".into());
            let answer = Answer::plain("acme", 404, "answered by htgate's ACME responder".into());
            return Ok(done(front, answer, chosen, req));
        }
        trusted = f.trusted_proxy;
        if trusted {
            front.push(format!(
                "{} is a trusted proxy (trusted_proxies): its HTTPS, X-Forwarded-Proto and Forwarded headers are believed",
                args.from
            ));
            let client = htgate_hosting::proxy::client_address(&req.headers, args.from, |ip| {
                htgate_hosting::is_trusted_in(&f.proxies, ip)
            });
            if client != args.from {
                front.push(format!(
                    "the client is {client}: X-Forwarded-For (or Forwarded: for=) walked back through the trusted proxies, as mod_remoteip does"
                ));
            }
            remote = client;
            if !tls && htgate_hosting::proxy::says_https(&req.headers) {
                front.push("the proxy says the client used HTTPS: %{HTTPS} is on, and the HTTPS and X-Forwarded-Proto headers say so".into());
                tls = true;
            }
        }
        if f.force_https && !tls {
            let host = if req.host.contains(':') {
                format!("[{}]", req.host)
            } else {
                req.host.clone()
            };
            let location = if f.https_port == 443 {
                format!("https://{host}{}", req.target)
            } else {
                format!("https://{host}:{}{}", f.https_port, req.target)
            };
            front.push("force_https: plain HTTP is redirected before any .htaccess runs".into());
            let mut answer = Answer::plain("redirect", 301, "force_https".into());
            answer.headers.push(("Location".into(), location.clone()));
            answer.location = Some(location);
            return Ok(done(front, answer, chosen, req));
        }
    }
    if req.method == http::Method::TRACE && chosen.site.trace_enable {
        let answer = Answer::plain(
            "trace_echo",
            200,
            "TraceEnable on: the request is echoed back before any .htaccess is read".into(),
        );
        return Ok(done(front, answer, chosen, req));
    }
    let head = RequestHead {
        method: req.method.clone(),
        target: req.target.clone(),
        protocol: "HTTP/1.1".into(),
        headers: req.headers.clone(),
        authority: Some(req.authority.clone()),
    };
    let port = req.port.unwrap_or(if req.tls { 443 } else { 80 });
    let conn = ConnInfo {
        remote: SocketAddr::new(remote, 54321),
        local: SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port),
        tls: req.tls,
        sni: req.tls.then(|| req.host.clone()),
        trusted_proxy: trusted,
        proxied_https: tls && !req.tls,
    };
    let (outcome, trace) = respond::run_traced(&chosen.site, &head, &conn, Some(Trace::new()));
    let mut answer = Answer::from_outcome(&outcome);
    if let Some(hsts) = chosen.hosted.as_ref().and_then(|f| f.hsts.clone()) {
        let own = answer
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("strict-transport-security"));
        if tls && !own {
            front.push("HSTS: Strict-Transport-Security is added to the HTTPS answer".into());
            answer
                .headers
                .push(("Strict-Transport-Security".into(), hsts));
        }
    }
    Ok(Explained {
        req,
        from: args.from,
        url: args.url.clone(),
        chosen,
        front,
        trace,
        answer,
    })
}

/// The `.htaccess` directives by file and line, read once, for showing the
/// rule or condition an event is about.
#[derive(Default)]
struct Sources {
    files: HashMap<String, Option<Directives>>,
}

/// `(directive name, whole directive text)` by line.
type Directives = HashMap<u32, (String, String)>;

impl Sources {
    /// `(directive name, whole directive text)` at `line` of `file`.
    fn at(&mut self, file: &str, line: u32) -> Option<(String, String)> {
        self.files
            .entry(file.to_string())
            .or_insert_with(|| read_directives(file))
            .as_ref()?
            .get(&line)
            .cloned()
    }

    /// The `.htaccess` a rule of `perdir`'s rule set comes from: the
    /// directory's own, else (RewriteOptions Inherit) the nearest parent's
    /// that has a RewriteRule with this pattern at this line.
    fn rule_file(&mut self, perdir: &str, line: u32, pattern: &str) -> Option<String> {
        let mut dir = perdir.trim_end_matches('/').to_string();
        loop {
            let file = format!("{dir}/{}", htgate_engine::site::ACCESS_FILE_NAME);
            if let Some((name, text)) = self.at(&file, line) {
                if name.eq_ignore_ascii_case("rewriterule") && text.contains(pattern) {
                    return Some(file);
                }
            }
            match dir.rfind('/') {
                Some(i) if i > 0 => dir.truncate(i),
                _ => return None,
            }
        }
    }
}

fn read_directives(file: &str) -> Option<Directives> {
    let source = std::fs::read(file).ok()?;
    let (parsed, _) = htgate_syntax::htaccess::parse(&source);
    let mut out = HashMap::new();
    fn walk(nodes: &[htgate_syntax::htaccess::Node], out: &mut Directives) {
        for n in nodes {
            match n {
                htgate_syntax::htaccess::Node::Directive(d) => {
                    let text = if d.raw_args.is_empty() {
                        d.name.clone()
                    } else {
                        format!("{} {}", d.name, d.raw_args)
                    };
                    out.insert(d.span.line, (d.name.clone(), text));
                }
                htgate_syntax::htaccess::Node::Section(s) => walk(&s.body, out),
            }
        }
    }
    walk(&parsed.nodes, &mut out);
    Some(out)
}

/// Walks the events keeping track of which file the current rule is in,
/// so that each rule and condition can be shown with its text.
#[derive(Default)]
struct Cursor {
    /// The rules' directory by sub-request depth.
    perdir: HashMap<u32, String>,
    /// The file of the last rule by depth.
    rule_file: HashMap<u32, Option<String>>,
}

impl Cursor {
    /// `(file, directive text)` of a rule or condition event.
    fn source(&mut self, e: &TraceEntry, src: &mut Sources) -> Option<(String, String)> {
        match &e.event {
            TraceEvent::RewriteRound { perdir, .. } => {
                self.perdir.insert(e.depth, perdir.clone());
                None
            }
            TraceEvent::Rule { line, pattern, .. } => {
                let perdir = self.perdir.get(&e.depth)?.clone();
                let file = src.rule_file(&perdir, *line, pattern);
                self.rule_file.insert(e.depth, file.clone());
                let file = file?;
                let (_, text) = src.at(&file, *line)?;
                Some((file, text))
            }
            TraceEvent::RuleSkipped { line, .. } => {
                let perdir = self.perdir.get(&e.depth)?.clone();
                let file = format!("{}{}", perdir, htgate_engine::site::ACCESS_FILE_NAME);
                let (_, text) = src.at(&file, *line)?;
                Some((file, text))
            }
            TraceEvent::Cond { line, .. } => {
                let file = self.rule_file.get(&e.depth)?.clone()?;
                let (_, text) = src.at(&file, *line)?;
                Some((file, text))
            }
            _ => None,
        }
    }
}

fn render_json(x: &Explained, src: &mut Sources) -> Value {
    let mut cursor = Cursor::default();
    let events: Vec<Value> = x
        .trace
        .as_ref()
        .map(|t| {
            t.events
                .iter()
                .map(|e| {
                    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
                    if let (Some((file, text)), Value::Object(m)) = (cursor.source(e, src), &mut v)
                    {
                        m.insert("file".into(), Value::String(file));
                        m.insert("directive".into(), Value::String(text));
                    }
                    v
                })
                .collect()
        })
        .unwrap_or_default();
    let headers: Vec<(String, String)> = x
        .req
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    json!({
        "request": {
            "method": x.req.method.as_str(),
            "url": x.url,
            "tls": x.req.tls,
            "host": x.req.host,
            "target": x.req.target,
            "from": x.from.to_string(),
            "headers": headers,
        },
        "site": {
            "mode": x.chosen.mode,
            "name": x.chosen.name,
            "root": x.chosen.site.docroot,
        },
        "front": x.front,
        "events": events,
        "outcome": x.answer.json(),
    })
}

fn quote(s: &str) -> String {
    format!("`{s}`")
}

fn captures_text(prefix: char, caps: &[Option<String>]) -> String {
    caps.iter()
        .enumerate()
        .map(|(i, c)| match c {
            Some(t) => format!("{prefix}{i}={}", quote(t)),
            None => format!("{prefix}{i} unset"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn render_text(x: &Explained, src: &mut Sources) -> String {
    let mut out = String::new();
    let line = |out: &mut String, indent: usize, text: &str| {
        out.push_str(&"  ".repeat(indent));
        out.push_str(text);
        out.push('\n');
    };
    line(
        &mut out,
        0,
        &format!("{} {} from {}", x.req.method, x.url, x.from),
    );
    let site = match &x.chosen.name {
        Some(n) => format!(
            "site `{n}` (config mode), document root {}",
            x.chosen.site.docroot
        ),
        None => format!("document root {} (quick mode)", x.chosen.site.docroot),
    };
    line(&mut out, 1, &site);
    for f in &x.front {
        line(&mut out, 1, f);
    }
    let mut cursor = Cursor::default();
    if let Some(t) = &x.trace {
        for e in &t.events {
            let base = e.depth as usize * 2;
            let source = cursor.source(e, src);
            render_event(&mut out, base, e, source);
        }
    }
    out.push('\n');
    let a = &x.answer;
    let summary = match a.kind {
        "file" => format!(
            "answer: {} with the file {}{}",
            a.status,
            a.file.as_deref().unwrap_or(""),
            a.content_type
                .as_deref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default()
        ),
        "redirect" => format!(
            "answer: {} redirect to {}",
            a.status,
            a.location.as_deref().unwrap_or("")
        ),
        "php" => format!(
            "answer: PHP-FPM runs {}{}; status {} unless the script sends its own",
            a.script.as_deref().unwrap_or("?"),
            a.note
                .as_deref()
                .map(|n| format!(", {n}"))
                .unwrap_or_default(),
            a.status
        ),
        "status" => format!(
            "answer: {} {}",
            a.status,
            http::StatusCode::from_u16(a.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("")
        ),
        _ => format!(
            "answer: {} ({})",
            a.status,
            a.note.as_deref().unwrap_or(a.kind)
        ),
    };
    line(&mut out, 0, &summary);
    if let (Some(n), false) = (&a.note, a.kind == "php") {
        line(&mut out, 1, n);
    }
    for (k, v) in &a.headers {
        line(&mut out, 1, &format!("{k}: {v}"));
    }
    out
}

fn render_event(out: &mut String, base: usize, e: &TraceEntry, source: Option<(String, String)>) {
    let mut line = |extra: usize, text: String| {
        out.push_str(&"  ".repeat(base + extra));
        out.push_str(&text);
        out.push('\n');
    };
    let directive = |line_no: u32| match &source {
        Some((_, text)) => format!("line {line_no}: {text}"),
        None => format!("line {line_no}"),
    };
    match &e.event {
        TraceEvent::Request {
            uri,
            query,
            subrequest_depth,
            redirects,
            status,
        } => {
            let q = query
                .as_deref()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            let what = if *subrequest_depth > 0 {
                "sub-request".to_string()
            } else if *status != 200 {
                format!("error document for status {status}:")
            } else if *redirects > 0 {
                format!("internal redirect #{redirects}:")
            } else {
                "request".to_string()
            };
            line(0, format!("{what} {uri}{q}"));
        }
        TraceEvent::Directory {
            htaccess, state, ..
        } => match (htaccess, *state) {
            (Some(f), "read") => line(1, format!("reads {f}")),
            (Some(f), "broken") => line(
                1,
                format!("{f} has errors: 500 for everything below (see `htgate check {f}`)"),
            ),
            (Some(f), _) => line(1, format!("{f} cannot be read: 500")),
            _ => {}
        },
        TraceEvent::Mapped {
            filename,
            path_info,
            kind,
        } => {
            let what = match *kind {
                "file" => "a file",
                "directory" => "a directory",
                "missing" => "does not exist",
                _ => "not a regular file",
            };
            let info = if path_info.is_empty() {
                String::new()
            } else {
                format!(", PATH_INFO {path_info}")
            };
            line(1, format!("maps to {filename} ({what}{info})"));
        }
        TraceEvent::Denied { by } => line(1, format!("access denied (403) by {by}")),
        TraceEvent::RewriteSkipped { perdir, why } => {
            line(1, format!("mod_rewrite of {perdir} does not run: {why}"))
        }
        TraceEvent::RewriteRound {
            perdir,
            round,
            base,
        } => {
            let base = base
                .as_deref()
                .map(|b| format!(", RewriteBase {b}"))
                .unwrap_or_default();
            line(
                1,
                format!("mod_rewrite, rules for {perdir}, round {round}{base}:"),
            );
        }
        TraceEvent::Rule {
            line: n,
            pattern,
            negate,
            input,
            matched,
            captures,
        } => {
            line(2, directive(*n));
            let neg = if *negate { "!" } else { "" };
            let verdict = match (matched, captures.is_empty()) {
                (true, false) => format!("matches; {}", captures_text('$', captures)),
                (true, true) => "matches".to_string(),
                (false, _) => "no match".to_string(),
            };
            line(
                3,
                format!(
                    "pattern {} against {}: {verdict}",
                    quote(&format!("{neg}{pattern}")),
                    quote(input)
                ),
            );
        }
        TraceEvent::RuleSkipped { line: n, why } => {
            line(2, directive(*n));
            line(3, format!("skipped: {why}"));
        }
        TraceEvent::Cond {
            line: n,
            test,
            kind,
            negate,
            ornext,
            matched,
            captures,
        } => {
            line(3, directive(*n));
            let neg = if *negate { "!" } else { "" };
            let or = if *ornext { ", [OR]" } else { "" };
            let mut verdict = if *matched {
                "holds".to_string()
            } else {
                "does not hold".to_string()
            };
            if !captures.is_empty() {
                verdict = format!("{verdict}; {}", captures_text('%', captures));
            }
            line(
                4,
                format!("test string {} ({neg}{kind}{or}): {verdict}", quote(test)),
            );
        }
        TraceEvent::Substitution { result, query, .. } => {
            let q = query
                .as_deref()
                .map(|q| format!(" with query {}", quote(q)))
                .unwrap_or_default();
            line(3, format!("substitution gives {}{q}", quote(result)));
        }
        TraceEvent::Flag { flag, effect, .. } => line(3, format!("[{flag}]: {effect}")),
        TraceEvent::Env { name, value, .. } => match value {
            Some(v) => line(3, format!("[E]: sets {name}={}", quote(v))),
            None => line(3, format!("[E]: unsets {name}")),
        },
        TraceEvent::RewriteStatus { status, why } => {
            line(1, format!("mod_rewrite answers {status}: {why}"))
        }
        TraceEvent::RewriteRedirect { status, location } => {
            line(1, format!("mod_rewrite redirects ({status}) to {location}"))
        }
        TraceEvent::RewriteUnchanged { why } => line(1, format!("mod_rewrite: {why}")),
        TraceEvent::InternalRedirect { target } => line(
            1,
            format!("mod_rewrite: internal redirect to {target} (processed again from the start)"),
        ),
        TraceEvent::AliasRedirect { status, target } => match target {
            Some(t) => line(1, format!("Redirect/RedirectMatch ({status}) to {t}")),
            None => line(1, format!("Redirect/RedirectMatch answers {status}")),
        },
        TraceEvent::DirectorySlash { location } => line(
            1,
            format!("mod_dir: a directory without its trailing slash: 301 to {location}"),
        ),
        TraceEvent::IndexChosen { name, filename } => line(
            1,
            format!("mod_dir: DirectoryIndex {name} serves the directory ({filename})"),
        ),
        TraceEvent::FallbackChosen { uri, filename } => line(
            1,
            format!("mod_dir: FallbackResource {uri} serves the missing file ({filename})"),
        ),
        TraceEvent::SubrequestEnd { status, filename } => match filename {
            Some(f) => line(1, format!("sub-request result: {status}, the file {f}")),
            None => line(1, format!("sub-request result: {status}, not a file")),
        },
    }
}

/// `htgate explain`'s text for a request `htgate replay` found different,
/// in the sites of `config`; whether htgate answers it with PHP.
pub(super) fn for_replay(
    config: &std::path::Path,
    r: &htgate_conformance::replay::Replayed,
) -> Option<htgate_conformance::replay::Explanation> {
    let args = ExplainArgs {
        url: r.url(),
        root: None,
        config: Some(config.to_path_buf()),
        headers: r.headers.iter().map(|(n, v)| format!("{n}: {v}")).collect(),
        method: r.method.clone(),
        from: IpAddr::from([192, 0, 2, 1]),
        format: Format::Text,
        server_name: Vec::new(),
        php_fpm: None,
        pass_client_https_headers: false,
    };
    let text = match explain(&args) {
        Ok(x) => {
            let php = x.answer.kind == "php";
            let mut sources = Sources::default();
            return Some(htgate_conformance::replay::Explanation {
                text: render_text(&x, &mut sources),
                php,
            });
        }
        Err(e) => format!("htgate explain failed: {e}"),
    };
    Some(htgate_conformance::replay::Explanation { text, php: false })
}
