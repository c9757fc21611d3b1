//! One file's rewrite rules played on paper for a made-up request.
//!
//! The lints ask "what would happen to this request?" without a document
//! root.  What the rules read is either known (the URL, the host, the
//! scheme, what the scenario says exists on disk) or not (a cookie, the
//! client's address, a file the scenario says nothing about); a condition
//! on something unknown makes the whole play [`Played::Unknown`], and the
//! lints then say nothing: a lint must never guess.
//!
//! Semantics follow `rewrite_exec` (per-directory rules, rounds, the
//! R5.3 loop guard, internal redirects), simplified where a lint does not
//! need more: `[N]` is bounded tightly, cookies/types/handlers are ignored.

use crate::pattern::{capture_text, Captures};
use crate::rewrite::{CondKind, EnvFlag, IntOp, RewriteCond, RewriteRule, StrOp};
use crate::rewrite_exec::absolute_uri_prefix;
use crate::template::{Named, Piece, Template, Var};

/// The made-up document root the file is played in (its own directory).
pub(super) const DOCROOT: &str = "/srv/htgate-lint";

/// Three-valued truth: a condition on something unknown is `Maybe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tri {
    Yes,
    No,
    Maybe,
}

impl Tri {
    fn from(b: bool) -> Tri {
        if b {
            Tri::Yes
        } else {
            Tri::No
        }
    }
    fn not(self) -> Tri {
        match self {
            Tri::Yes => Tri::No,
            Tri::No => Tri::Yes,
            Tri::Maybe => Tri::Maybe,
        }
    }
    fn or(self, o: Tri) -> Tri {
        match (self, o) {
            (Tri::Yes, _) | (_, Tri::Yes) => Tri::Yes,
            (Tri::No, Tri::No) => Tri::No,
            _ => Tri::Maybe,
        }
    }
    fn and(self, o: Tri) -> Tri {
        match (self, o) {
            (Tri::No, _) | (_, Tri::No) => Tri::No,
            (Tri::Yes, Tri::Yes) => Tri::Yes,
            _ => Tri::Maybe,
        }
    }
}

/// What a path on disk is, as far as the scenario knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Disk {
    File,
    Dir,
    Missing,
}

/// What exists: URL paths (`/a/b`, no trailing slash) and their kind.
/// Anything not listed is unknown.
#[derive(Debug, Clone, Default)]
pub(super) struct Scenario {
    pub known: Vec<(String, Disk)>,
    /// Rewrite targets are taken to exist (a front controller is a real
    /// file): their first component with a dot is a file.
    pub targets_exist: bool,
    /// Stop at the first internal redirect (the question is only whether
    /// the request is rewritten at all).
    pub first_rewrite_only: bool,
}

impl Scenario {
    fn disk(&self, url_path: &str) -> Option<Disk> {
        let p = url_path.trim_end_matches('/');
        if p.is_empty() {
            return Some(Disk::Dir);
        }
        self.known
            .iter()
            .rev()
            .find(|(k, _)| k.trim_end_matches('/') == p)
            .map(|(_, d)| *d)
    }

    /// Records a rewrite target as existing (see `targets_exist`); this
    /// wins over what the scenario said before (a sample taken as missing
    /// may be the front controller itself).
    fn note_target(&mut self, url_path: &str) {
        if !self.targets_exist {
            return;
        }
        let mut prefix = String::new();
        for comp in url_path.trim_start_matches('/').split('/') {
            if comp.is_empty() {
                break;
            }
            prefix.push('/');
            prefix.push_str(comp);
            if comp.contains('.') {
                self.known.push((prefix.clone(), Disk::File));
                return;
            }
            // a folder on the way: whatever it is, it is not missing
            self.known
                .retain(|(k, _)| k.trim_end_matches('/') != prefix);
        }
    }
}

/// A request as the client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sample {
    pub https: bool,
    pub host: String,
    /// Decoded URL path, starting with `/`.
    pub path: String,
    pub query: Option<String>,
}

impl Sample {
    pub(super) fn new(https: bool, host: &str, path: &str) -> Sample {
        Sample {
            https,
            host: host.to_string(),
            path: path.to_string(),
            query: None,
        }
    }

    /// The URL a client would request next for `location` (None: not a
    /// URL a browser would follow to this kind of server).
    pub(super) fn follow(&self, location: &str) -> Option<Sample> {
        let (skip, _) = absolute_uri_prefix(location)?;
        let scheme = location[..skip].to_ascii_lowercase();
        let https = match scheme.as_str() {
            "https://" => true,
            "http://" => false,
            _ => return None,
        };
        let rest = &location[skip..];
        let (hostport, pathq) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let host = hostport
            .rsplit_once(':')
            .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
            .map(|(h, _)| h)
            .unwrap_or(hostport)
            .to_ascii_lowercase();
        let (path, query) = match pathq.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (pathq.to_string(), None),
        };
        let path = htgate_util::escape::unescape_url(&path)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or(path);
        Some(Sample {
            https,
            host,
            path,
            query,
        })
    }
}

/// How one request ends, as far as mod_rewrite decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Played {
    /// Mod_rewrite leaves the request alone (after `internal` redirects).
    Served { path: String, internal: Vec<Step> },
    /// An external redirect by rule `rule` (an index into the list).
    Redirect {
        location: String,
        rule: usize,
        internal: Vec<Step>,
    },
    /// A status answer (F, G, R=4xx) by rule `rule`.
    Status {
        status: u16,
        rule: usize,
        internal: Vec<Step>,
    },
    /// More internal redirects than Apache allows (500).
    TooManyRedirects { internal: Vec<Step> },
    /// Something the scenario does not know decided the outcome.
    Unknown,
}

/// One internal redirect: the rule that made it and the new URL path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Step {
    pub rule: usize,
    pub path: String,
}

/// The rules of one `.htaccess` and what the request sees of it.
pub(super) struct Rules<'a> {
    pub rules: &'a [RewriteRule],
    pub base: Option<&'a str>,
    /// Variables the file's SetEnvIf lines may set before the rules run
    /// (anything else the rules did not set is empty, as in Apache: mod_env
    /// runs after mod_rewrite's per-directory fixup).
    pub setenvif: Vec<String>,
}

/// `LimitInternalRecursion`.
const MAX_REDIRECTS: usize = 10;

/// The state of one request while its rules run.
#[derive(Clone)]
struct Req {
    sample: Sample,
    /// The current filename (a filesystem path, or an absolute URL after
    /// a redirecting rule), and whether it is known.
    filename: String,
    filename_known: bool,
    path_info: String,
    query: Option<String>,
    env: Vec<(String, Option<String>)>,
    setenvif: Vec<String>,
}

/// What one round over the rules gave.
enum Round {
    Unchanged,
    Rewritten { end: bool, rule: usize },
    Redirect { status_ok: bool, rule: usize },
    Status { status: u16, rule: usize },
    Unknown,
}

/// Plays `sample` through `rules` in `scenario`, following internal
/// redirects (each runs the rules again, as the file is the document
/// root's).
pub(super) fn play(rules: &Rules<'_>, sample: &Sample, scenario: &Scenario) -> Played {
    let mut scenario = scenario.clone();
    let mut internal: Vec<Step> = Vec::new();
    let mut env: Vec<(String, Option<String>)> = Vec::new();
    let mut path = sample.path.clone();
    let mut query = sample.query.clone();
    let mut end = false;
    loop {
        if internal.len() > MAX_REDIRECTS {
            return Played::TooManyRedirects { internal };
        }
        // [END]: the internal redirect is not rewritten again.
        if end {
            return Played::Served { path, internal };
        }
        let mut s = sample.clone();
        s.path = path.clone();
        s.query = query.clone();
        let (mut r, below) = map(&s, &scenario, env.clone(), rules.setenvif.clone());
        // After an internal redirect into a folder, that folder's own
        // .htaccess (unknown here) may run instead of these rules.
        if below && !internal.is_empty() {
            return Played::Unknown;
        }
        let ofilename = r.filename.clone();
        let round = run_round(rules, &mut r, &scenario);
        match round {
            Round::Unknown => return Played::Unknown,
            Round::Unchanged => return Played::Served { path, internal },
            Round::Status { status, rule } => {
                return Played::Status {
                    status,
                    rule,
                    internal,
                }
            }
            Round::Redirect { status_ok, rule } => {
                if !status_ok {
                    return Played::Unknown;
                }
                let location = location(rules, &r);
                return Played::Redirect {
                    location,
                    rule,
                    internal,
                };
            }
            Round::Rewritten { end: e, rule } => {
                if !r.filename_known {
                    return Played::Unknown;
                }
                // An absolute URL to another host (or scheme) is a redirect.
                if absolute_uri_prefix(&r.filename).is_some() {
                    return Played::Redirect {
                        location: location(rules, &r),
                        rule,
                        internal,
                    };
                }
                if let Some(rest) = r.filename.strip_prefix("passthrough:") {
                    r.filename = rest.to_string();
                }
                // R5.3: the result names the file already requested.
                if r.filename == ofilename {
                    return Played::Served { path, internal };
                }
                let url = to_url(rules, &r.filename);
                scenario.note_target(&url);
                env = r
                    .env
                    .iter()
                    .map(|(k, v)| (format!("REDIRECT_{k}"), v.clone()))
                    .collect();
                env.push(("REDIRECT_STATUS".into(), Some("200".into())));
                internal.push(Step {
                    rule,
                    path: url.clone(),
                });
                path = url;
                query = r.query.clone();
                end = e || scenario.first_rewrite_only;
            }
        }
    }
}

/// The directory walk on paper: the filename and PATH_INFO of a path, and
/// whether the walk may go through a folder below the document root.
fn map(
    s: &Sample,
    scenario: &Scenario,
    env: Vec<(String, Option<String>)>,
    setenvif: Vec<String>,
) -> (Req, bool) {
    let mut below = false;
    let mut filename = format!("{DOCROOT}/");
    let mut known = true;
    let mut path_info = String::new();
    let comps: Vec<&str> = s.path.trim_start_matches('/').split('/').collect();
    let mut prefix = String::new();
    for (i, comp) in comps.iter().enumerate() {
        if comp.is_empty() {
            break;
        }
        prefix.push('/');
        prefix.push_str(comp);
        match scenario.disk(&prefix) {
            Some(Disk::Dir) => {
                below = true;
                filename = if i + 1 == comps.len() {
                    format!("{DOCROOT}{prefix}")
                } else {
                    format!("{DOCROOT}{prefix}/")
                };
            }
            Some(Disk::File) | Some(Disk::Missing) => {
                filename = format!("{DOCROOT}{prefix}");
                let rest = &comps[i + 1..];
                if !rest.is_empty() {
                    path_info = format!("/{}", rest.join("/"));
                }
                break;
            }
            None => {
                // Where the walk stops is unknown: conditions on the
                // filename cannot be decided, the rules' input still can.
                known = false;
                below = true;
                filename = format!("{DOCROOT}{}", s.path);
                break;
            }
        }
    }
    let r = Req {
        query: s.query.clone(),
        sample: s.clone(),
        filename,
        filename_known: known,
        path_info,
        env,
        setenvif,
    };
    (r, below)
}

/// The rules' per-directory prefix (the document root: see [`DOCROOT`]).
fn perdir() -> String {
    format!("{DOCROOT}/")
}

/// `rewrite_fixup`'s URL of a rewritten filename.
fn to_url(rules: &Rules<'_>, filename: &str) -> String {
    let pd = perdir();
    match rules.base {
        Some(base) => match filename.strip_prefix(&pd) {
            Some(rest) => {
                let mut b = base.to_string();
                if !b.ends_with('/') {
                    b.push('/');
                }
                format!("{b}{rest}")
            }
            None => filename.to_string(),
        },
        None => match filename.strip_prefix(DOCROOT) {
            Some(rest) if rest.starts_with('/') => rest.to_string(),
            _ => filename.to_string(),
        },
    }
}

/// The Location of a redirecting round (`fully_qualify_uri` already ran
/// in the round; RewriteBase replaces the directory prefix).
fn location(rules: &Rules<'_>, r: &Req) -> String {
    let mut target = r.filename.clone();
    if let (Some((skip, _)), Some(base)) = (absolute_uri_prefix(&target), rules.base) {
        if let Some(slash) = target[skip..].find('/') {
            let path_start = skip + slash + 1;
            let rest = target[path_start..].to_string();
            let dir = DOCROOT.trim_start_matches('/');
            if let Some(tail) = rest.strip_prefix(dir) {
                if let Some(tail) = tail.strip_prefix('/') {
                    let b = base.trim_start_matches('/');
                    let b = if b.is_empty() || b.ends_with('/') {
                        b.to_string()
                    } else {
                        format!("{b}/")
                    };
                    target = format!("{}{b}{tail}", &target[..path_start]);
                }
            }
        }
    }
    if let Some(q) = &r.query {
        target.push('?');
        target.push_str(q);
    }
    target
}

fn run_round(rules: &Rules<'_>, r: &mut Req, scenario: &Scenario) -> Round {
    let list = rules.rules;
    let mut changed: Option<usize> = None;
    let mut redirect: Option<usize> = None;
    let mut end = false;
    let mut restarts = 0;
    'restart: loop {
        let mut i = 0;
        while i < list.len() {
            let p = &list[i];
            let fired = apply_rule(p, r, scenario);
            match fired {
                Fired::Unknown => return Round::Unknown,
                Fired::No => {
                    if p.flags.chain {
                        while i < list.len() && list[i].flags.chain {
                            i += 1;
                        }
                    }
                    i += 1;
                    continue;
                }
                Fired::Status(s) => return Round::Status { status: s, rule: i },
                Fired::NoSub => {}
                Fired::Rewrote => {
                    changed = Some(i);
                    if p.flags.force_redirect {
                        redirect = Some(i);
                    }
                }
            }
            if p.flags.end {
                end = true;
                break;
            }
            if p.flags.passthrough {
                break;
            }
            if p.flags.last || p.flags.proxy {
                break;
            }
            if p.flags.next {
                restarts += 1;
                if restarts > 8 {
                    return Round::Unknown;
                }
                continue 'restart;
            }
            i += 1 + p.flags.skip as usize;
        }
        break;
    }
    if let Some(rule) = redirect {
        // A redirect answers only when the final filename is a URL.
        let ok = absolute_uri_prefix(&r.filename).is_some();
        return Round::Redirect {
            status_ok: ok,
            rule,
        };
    }
    match changed {
        Some(rule) => Round::Rewritten { end, rule },
        None => Round::Unchanged,
    }
}

/// A `-` rule whose only effect is `[E=…]`.
fn env_only(p: &RewriteRule) -> bool {
    let f = &p.flags;
    f.nosub
        && !f.status_rule
        && !(f.last || f.end || f.next || f.chain || f.passthrough || f.force_redirect)
        && f.skip == 0
        && f.forced_handler.is_none()
}

enum Fired {
    No,
    NoSub,
    Rewrote,
    Status(u16),
    Unknown,
}

/// Back-references while a rule runs.
#[derive(Default)]
struct Refs {
    rule: Option<(String, Captures)>,
    /// `None` inside: the last condition's captures are unknown.
    cond: Option<Option<(String, Captures)>>,
}

fn apply_rule(p: &RewriteRule, r: &mut Req, scenario: &Scenario) -> Fired {
    let mut input = format!("{}{}", r.filename, r.path_info);
    let pd = perdir();
    if let Some(rest) = input.strip_prefix(pd.as_str()) {
        input = rest.to_string();
    }
    let caps = p.pattern.captures(&input);
    let mut refs = Refs::default();
    match (caps, p.negate) {
        (Some(c), false) => refs.rule = Some((input, c)),
        (None, true) => {}
        _ => return Fired::No,
    }
    match conds(&p.conds, r, &mut refs, scenario) {
        Tri::No => return Fired::No,
        // A rule that can only set variables (WordPress's and Symfony's
        // `%{HTTP:Authorization}` pass-through) leaves them unknown; the
        // request goes on either way.
        Tri::Maybe if env_only(p) => {
            for e in &p.flags.env {
                let (EnvFlag::Set(n, _) | EnvFlag::Unset(n)) = e;
                let Some(name) = expand(n, r, &refs) else {
                    return Fired::Unknown;
                };
                r.env.retain(|(k, _)| *k != name);
                r.env.push((name, None));
            }
            return Fired::No;
        }
        Tri::Maybe => return Fired::Unknown,
        Tri::Yes => {}
    }
    for e in &p.flags.env {
        match e {
            EnvFlag::Set(n, v) => {
                let Some(name) = expand(n, r, &refs) else {
                    return Fired::Unknown;
                };
                let value = expand(v, r, &refs);
                r.env.retain(|(k, _)| *k != name);
                r.env.push((name, value));
            }
            EnvFlag::Unset(n) => {
                let Some(name) = expand(n, r, &refs) else {
                    return Fired::Unknown;
                };
                r.env.retain(|(k, _)| *k != name);
                r.env.push((name, Some(String::new())));
            }
        }
    }
    if p.flags.nosub {
        if p.flags.status_rule {
            return Fired::Status(p.flags.status);
        }
        return Fired::NoSub;
    }
    let Some(subst) = &p.subst else {
        return Fired::NoSub;
    };
    let Some(mut out) = expand(subst, r, &refs) else {
        return Fired::Unknown;
    };
    if absolute_uri_prefix(&out).is_none() && out.starts_with("//") && !p.flags.unc {
        out = format!("/{}", out.trim_start_matches('/'));
    }
    // splitout_queryargs, simplified: the first `?` (the last with QSL).
    if p.flags.qsnone {
        r.query = None;
    } else {
        if p.flags.qsdiscard {
            r.query = None;
        }
        let q = if p.flags.qslast {
            out.rfind('?')
        } else {
            out.find('?')
        };
        if let Some(q) = q {
            let query = out[q + 1..].to_string();
            out.truncate(q);
            if !p.flags.qsappend {
                r.query = (!query.is_empty()).then_some(query);
            } else if !query.is_empty() {
                r.query = Some(match &r.query {
                    Some(old) => format!("{query}&{old}"),
                    None => query,
                });
            }
        }
    }
    if p.flags.discard_path_info {
        r.path_info.clear();
    }
    if !out.starts_with('/') && absolute_uri_prefix(&out).is_none() {
        out = format!("{pd}{out}");
    }
    if p.flags.force_redirect {
        if absolute_uri_prefix(&out).is_none() {
            // fully_qualify_uri
            let scheme = if r.sample.https { "https" } else { "http" };
            out = format!("{scheme}://{}{out}", r.sample.host);
        }
    } else if let Some((skip, _)) = absolute_uri_prefix(&out) {
        // reduce_uri: the own host and scheme become a local path
        let own = if r.sample.https {
            "https://"
        } else {
            "http://"
        };
        if out[..skip].eq_ignore_ascii_case(own) {
            let rest = &out[skip..];
            let (host, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            if host.eq_ignore_ascii_case(&r.sample.host) {
                out = path.to_string();
            }
        }
    }
    r.filename = out;
    r.filename_known = true;
    Fired::Rewrote
}

/// The conditions of a rule, `[OR]` groups ANDed.
fn conds(list: &[RewriteCond], r: &Req, refs: &mut Refs, scenario: &Scenario) -> Tri {
    let mut all = Tri::Yes;
    let mut group = Tri::No;
    for c in list {
        let v = cond(c, r, refs, scenario);
        group = group.or(v);
        if !c.ornext {
            all = all.and(group);
            group = Tri::No;
            if all == Tri::No {
                return Tri::No;
            }
        }
    }
    if list.last().is_some_and(|c| c.ornext) {
        all = all.and(group);
    }
    all
}

fn cond(c: &RewriteCond, r: &Req, refs: &mut Refs, scenario: &Scenario) -> Tri {
    let Some(subject) = expand(&c.test, r, refs) else {
        refs.cond = Some(None);
        return Tri::Maybe;
    };
    let result = match &c.kind {
        CondKind::Regex(p) => match p.captures(&subject) {
            Some(caps) => {
                if !c.negate {
                    refs.cond = Some(Some((subject.clone(), caps)));
                }
                Tri::Yes
            }
            None => Tri::No,
        },
        CondKind::FileRegular | CondKind::FileNonEmpty => file_test(&subject, scenario, Disk::File),
        CondKind::FileDir => file_test(&subject, scenario, Disk::Dir),
        CondKind::FileSymlink | CondKind::FileExecutable => {
            match file_test(&subject, scenario, Disk::File) {
                Tri::No if disk_of(&subject, scenario) == Some(Disk::Missing) => Tri::No,
                _ => Tri::Maybe,
            }
        }
        CondKind::StrCmp(op, t) => match expand(t, r, refs) {
            Some(other) => match op {
                StrOp::Eq => Tri::from(if c.nocase {
                    subject.eq_ignore_ascii_case(&other)
                } else {
                    subject == other
                }),
                _ => Tri::Maybe,
            },
            None => Tri::Maybe,
        },
        CondKind::IntCmp(op, t) => match expand(t, r, refs) {
            Some(other) => {
                let a = htgate_util::atoi(&subject);
                let b = htgate_util::atoi(&other);
                Tri::from(match op {
                    IntOp::Lt => a < b,
                    IntOp::Le => a <= b,
                    IntOp::Eq => a == b,
                    IntOp::Gt => a > b,
                    IntOp::Ge => a >= b,
                })
            }
            None => Tri::Maybe,
        },
        CondKind::Expr(_) | CondKind::FileSubreq | CondKind::UrlSubreq => Tri::Maybe,
    };
    if result == Tri::Maybe {
        refs.cond = Some(None);
    }
    if c.negate {
        result.not()
    } else {
        result
    }
}

/// What the scenario says a filesystem path is.
fn disk_of(path: &str, scenario: &Scenario) -> Option<Disk> {
    let url = path.strip_prefix(DOCROOT)?;
    if !url.is_empty() && !url.starts_with('/') {
        return None;
    }
    scenario.disk(url)
}

fn file_test(path: &str, scenario: &Scenario, want: Disk) -> Tri {
    match disk_of(path, scenario) {
        Some(d) => Tri::from(d == want),
        None => Tri::Maybe,
    }
}

/// `do_expand`; `None` when a piece is unknown.
fn expand(t: &Template, r: &Req, refs: &Refs) -> Option<String> {
    let mut out = String::new();
    for piece in &t.pieces {
        match piece {
            Piece::Lit(s) => out.push_str(s),
            // a negated pattern has no captures: `$N` is empty
            Piece::RuleRef(n) => {
                if let Some((subject, caps)) = &refs.rule {
                    out.push_str(&capture_text(subject, caps, *n as usize));
                }
            }
            Piece::CondRef(n) => match &refs.cond {
                Some(Some((subject, caps))) => {
                    out.push_str(&capture_text(subject, caps, *n as usize))
                }
                Some(None) => return None,
                None => {}
            },
            Piece::Var(v) => out.push_str(&var(v, r)?),
            Piece::Map { default, .. } => out.push_str(&expand(default, r, refs)?),
        }
    }
    Some(out)
}

fn var(v: &Var, r: &Req) -> Option<String> {
    let s = &r.sample;
    let scheme_header = |on: &str| {
        if s.https {
            on.to_string()
        } else {
            String::new()
        }
    };
    match v {
        Var::Header { name, .. } => {
            let n = name.to_ascii_lowercase();
            match n.as_str() {
                "host" => Some(s.host.clone()),
                // htgate, as the TLS front, sets these itself and removes
                // what clients send.
                "https" => Some(scheme_header("on")),
                "x-forwarded-proto" => Some(scheme_header("https")),
                "forwarded" => Some(String::new()),
                _ => None,
            }
        }
        Var::Env(n) => match r.env.iter().rev().find(|(k, _)| k == n) {
            Some((_, v)) => v.clone(),
            None => {
                let own = n.strip_prefix("REDIRECT_").unwrap_or(n);
                let maybe = r.setenvif.iter().any(|x| x == n || x == own);
                (!maybe).then(String::new)
            }
        },
        Var::Ssl(n) => Some(crate::template::ssl_var(n, s.https).to_string()),
        Var::LookAheadUrl(_) | Var::LookAheadFile(_) => None,
        Var::Empty => Some(String::new()),
        Var::Named(n) => named(*n, r),
    }
}

fn named(n: Named, r: &Req) -> Option<String> {
    use Named::*;
    let s = &r.sample;
    Some(match n {
        RequestMethod => "GET".into(),
        ScriptFilename | RequestFilename => {
            if !r.filename_known {
                return None;
            }
            r.filename.clone()
        }
        PathInfo => r.path_info.clone(),
        QueryString => r.query.clone().unwrap_or_default(),
        DocumentRoot | ContextDocumentRoot => DOCROOT.into(),
        ContextPrefix => String::new(),
        ServerName => s.host.clone(),
        ServerPort => if s.https { "443" } else { "80" }.into(),
        ServerProtocol => "HTTP/1.1".into(),
        TheRequest => {
            let q = s
                .query
                .as_deref()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            format!(
                "GET {}{q} HTTP/1.1",
                htgate_util::escape::escape_uri(&s.path)
            )
        }
        RequestUri => s.path.clone(),
        RequestScheme => if s.https { "https" } else { "http" }.into(),
        Https => if s.https { "on" } else { "off" }.into(),
        IsSubreq => "false".into(),
        _ => return None,
    })
}
