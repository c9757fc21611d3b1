//! Running mod_rewrite's per-directory rules for one request.
//! Apache: `mod_rewrite.c` `hook_fixup`, `apply_rewrite_list`,
//! `apply_rewrite_rule`, `apply_rewrite_cond`, `do_expand`,
//! `splitout_queryargs`, `fully_qualify_uri`, `reduce_uri`, `add_cookie`.
//! SEMANTICS.md (C, M, F, G, E, Q, R, U) is the digest this follows.

use super::config::{OPT_SYM_LINKS, OPT_SYM_OWNER, RWOPT_NOSLASH};
use super::dispatch::RuleSeq;
use super::pattern::{capture_text, Captures};
use super::request::{FileKind, Handler, Main, Req, Stop, LIMIT_REQUEST_LINE};
use super::rewrite::{CondKind, EnvFlag, IntOp, RewriteCond, RewriteRule, StrOp};
use super::template::{Named, Piece, Template, Var};
use super::trace::{Flag, Refusal, Skip, TraceEvent};
use chrono::{Datelike, Local, Timelike};
use htgate_util::escape;

/// Back-references available while expanding: the rule's match and the
/// last matched condition's.
#[derive(Default, Clone)]
struct Refs {
    rule_subject: String,
    rule_caps: Captures,
    cond_subject: String,
    cond_caps: Captures,
}

/// Result of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleResult {
    NoMatch,
    /// Matched with a substitution.
    Rewrote,
    /// Matched a `-` rule (only flags act).
    NoSub,
    /// Answer this status now (F, G, R=4xx, and the 403s of S2).
    Status(u16),
}

/// What the list did (`ACTION_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListResult {
    Unchanged,
    Changed { noescape: bool },
    Status(u16),
}

/// Length of the scheme prefix of an absolute URI and whether the scheme
/// takes a query (`is_absolute_uri`).
pub(crate) fn absolute_uri_prefix(uri: &str) -> Option<(usize, bool)> {
    const SCHEMES: &[(&str, bool)] = &[
        ("ajp://", true),
        ("balancer://", true),
        ("fcgi://", true),
        ("ftp://", false),
        ("gopher://", false),
        ("h2://", true),
        ("h2c://", true),
        ("http://", true),
        ("https://", true),
        ("ldap://", true),
        ("mailto:", true),
        ("news:", false),
        ("nntp://", false),
        ("scgi://", true),
        ("unix:", true),
        ("ws://", true),
        ("wss://", true),
    ];
    let head = uri.get(..12.min(uri.len()))?.as_bytes();
    // Every scheme starts with a letter: a local path (the usual case) is
    // answered at once.
    if !head.first().is_some_and(u8::is_ascii_alphabetic) {
        return None;
    }
    SCHEMES
        .iter()
        .find(|(s, _)| head.len() >= s.len() && head[..s.len()].eq_ignore_ascii_case(s.as_bytes()))
        .map(|(s, q)| (s.len(), *q))
}

impl<'a> Main<'a> {
    /// `hook_fixup` in per-directory context.
    pub(super) fn rewrite_fixup(&mut self, r: &mut Req) -> Result<(), Stop> {
        // The config is shared (an `Arc`): borrowed, not copied.
        let conf = r.conf.clone();
        let rw = &conf.rewrite;
        if !rw.present || !rw.engine || rw.rules.iter().all(|l| l.is_empty()) {
            return Ok(());
        }
        let perdir = &rw.directory;
        // C3: a request for the rules' own directory without its slash is
        // left to mod_dir.
        if rw.options & RWOPT_NOSLASH == 0
            && r.filename.len() + 1 == perdir.len()
            && perdir.starts_with(r.filename.as_str())
        {
            self.note(|| TraceEvent::skipped(perdir, Skip::NoSlash));
            return Ok(());
        }
        // C4: END of an earlier round of this request.
        if r.end {
            self.note(|| TraceEvent::skipped(perdir, Skip::End));
            return Ok(());
        }
        // C5: mod_rewrite refuses to run without FollowSymLinks.
        if r.conf.options & (OPT_SYM_LINKS | OPT_SYM_OWNER) == 0 {
            tracing::warn!(
                "Options FollowSymLinks and SymLinksIfOwnerMatch are both off, so the RewriteRule directive is also forbidden due to its similar ability to circumvent directory restrictions: {}",
                r.filename
            );
            self.note(|| TraceEvent::skipped(perdir, Skip::NoFollowSymLinks));
            return Err(Stop::status(403));
        }
        // The filename and query before the rules: saved by the list when
        // a rule first matches (nothing to copy when none does).
        let mut saved: Option<(String, Option<String>)> = None;
        let result = self.apply_rewrite_list(r, &rw.rules, perdir, &mut saved);
        let noescape = match result {
            ListResult::Unchanged => {
                if let Some((ofilename, _)) = saved {
                    r.filename = ofilename;
                }
                self.note(|| TraceEvent::unchanged(false));
                return Ok(());
            }
            ListResult::Status(s) => {
                if let Some(q) = &r.args {
                    if has_ctl_or_space(q) {
                        return Err(Stop::status(403));
                    }
                }
                self.note(|| TraceEvent::rewrite_status(s, Refusal::Rule));
                return Err(Stop::status(s));
            }
            ListResult::Changed { noescape } => noescape,
        };
        let (ofilename, oargs) = saved.unwrap_or_else(|| (r.filename.clone(), r.args.clone()));
        let absolute = absolute_uri_prefix(&r.filename);
        let to_proxy = r.filename.starts_with("proxy:");
        let will_escape = absolute.is_some() && !noescape;
        if let Some(q) = &r.args {
            if !will_escape && has_ctl_or_space(q) {
                // AH10411: a raw space or control character in a rewritten
                // query (CVE-2023-25690).
                self.note(|| TraceEvent::rewrite_status(403, Refusal::CtlInQuery));
                return Err(Stop::status(403));
            }
        }
        if to_proxy {
            // AH10160: no mod_proxy, so [P] is refused.
            self.note(|| TraceEvent::rewrite_status(403, Refusal::Proxy));
            return Err(Stop::status(403));
        }
        if let Some((skip, _)) = absolute {
            let mut target = r.filename.clone();
            if let Some(base) = &rw.base {
                // Replace the perdir filesystem prefix right after
                // `scheme://host/` with the RewriteBase.
                if let Some(slash) = target[skip..].find('/') {
                    let path_start = skip + slash + 1;
                    if path_start < target.len() {
                        let rest = target[path_start..].to_string();
                        let dir = perdir.strip_prefix('/').unwrap_or(perdir);
                        let base1 = base.strip_prefix('/').unwrap_or(base);
                        let replaced = subst_prefix_path(&rest, dir, base1);
                        if replaced != rest {
                            target = format!("{}{}", &target[..path_start], replaced);
                        }
                    }
                }
            }
            if !noescape {
                target = escape::escape_absolute_uri(&target, skip);
            }
            if let Some(args) = &r.args {
                let raw = noescape || oargs.as_deref() == Some(args.as_str());
                target.push('?');
                if raw {
                    target.push_str(args);
                } else {
                    target.push_str(&escape::escape_uri(args));
                }
            }
            let status = if (300..400).contains(&r.status) {
                let s = r.status;
                r.status = 200;
                s
            } else {
                302
            };
            self.note(|| TraceEvent::redirect(status, &target));
            return Err(Stop::redirect(status, target));
        }
        if let Some(rest) = r.filename.strip_prefix("passthrough:") {
            r.filename = rest.to_string();
        }
        if !r.filename.starts_with('/') {
            return Err(Stop::status(400));
        }
        // R5.3: the loop guard.
        if r.filename == ofilename {
            self.note(|| TraceEvent::unchanged(true));
            return Ok(());
        }
        let mut url = r.filename.clone();
        if let Some(base) = &rw.base {
            url = subst_prefix_path(&url, perdir, base);
        } else {
            let docroot = self.site.docroot.trim_end_matches('/');
            if let Some(rest) = url.strip_prefix(docroot) {
                if rest.starts_with('/') {
                    url = rest.to_string();
                }
            }
        }
        let mut target = url;
        if let Some(a) = &r.args {
            target.push('?');
            target.push_str(a);
        }
        if matches!(r.handler, Handler::Named(_)) {
            // R10: a rule's `[H=...]` took the place of redirect-handler,
            // so the internal redirect never happens: the default handler
            // looks for the file `redirect:/...`, which is a 404 (recorded
            // in fixtures/conformance/htgate-flag-H-perdir.case).
            r.filename = format!("redirect:{target}");
            r.finfo = FileKind::Missing;
            r.meta = None;
            return Ok(());
        }
        self.note(|| TraceEvent::internal(&target));
        r.handler = Handler::Redirect(target);
        Ok(())
    }

    fn apply_rewrite_list(
        &mut self,
        r: &mut Req,
        lists: &[std::sync::Arc<Vec<RewriteRule>>],
        perdir: &str,
        saved: &mut Option<(String, Option<String>)>,
    ) -> ListResult {
        let rules = RuleSeq::new(lists);
        // A long list jumps over the rules that cannot match (`dispatch`);
        // `explain` records every rule, so it runs them all.
        let index = if self.trace.is_none() {
            rules.index()
        } else {
            None
        };
        let mut hits: Vec<u32> = Vec::new();
        // With PATH_INFO the subject is a copy: made once, and again only
        // after a rule changed the file name.
        let mut joined = joined_input(r, perdir);
        let mut changed = ListResult::Unchanged;
        let mut round: u32 = 1;
        'restart: loop {
            self.note(|| TraceEvent::round(perdir, round, r.conf.rewrite.base.as_ref()));
            if let Some(ix) = index {
                ix.hits(rule_input(r, perdir, joined.as_deref()), &mut hits);
            }
            let mut i = 0;
            while i < rules.len() {
                if let Some(ix) = index {
                    let next = ix.next(i, &hits);
                    if next != i {
                        i = next;
                        continue;
                    }
                }
                let p = rules.get(i);
                if r.is_subreq && (p.flags.nosubreq || p.flags.force_redirect) {
                    self.note(|| TraceEvent::rule_skipped(p));
                    i += 1;
                    continue;
                }
                let mut vary: Vec<String> = Vec::new();
                // The rule's search is charged here, with the check for a
                // budget its conditions may have spent: one touch of the
                // meter per rule.
                let mut owed = 0;
                let rc = self.apply_rewrite_rule(
                    r,
                    p,
                    perdir,
                    joined.as_deref(),
                    &mut vary,
                    saved,
                    &mut owed,
                );
                if !htgate_util::budget::charge(htgate_util::budget::Work::Regex, owed) {
                    self.budget_spent_at(perdir, p.line, p.col);
                    return ListResult::Status(500);
                }
                if rc == RuleResult::Rewrote && !(p.flags.last || p.flags.end || p.flags.proxy) {
                    // the list goes on with a new subject
                    joined = joined_input(r, perdir);
                    if let Some(ix) = index {
                        // a new subject: other prefixes may match it
                        ix.hits(rule_input(r, perdir, joined.as_deref()), &mut hits);
                    }
                }
                if rc != RuleResult::NoMatch {
                    if r.filename.len() > 2 * LIMIT_REQUEST_LINE {
                        return ListResult::Status(500);
                    }
                    // What a rewrite built is work too: `[QSA,N]` grows
                    // the query every round.
                    let built = r.filename.len() + r.args.as_ref().map_or(0, String::len);
                    if !htgate_util::budget::charge(htgate_util::budget::Work::Text, built as u64) {
                        self.budget_spent_at(perdir, p.line, p.col);
                        return ListResult::Status(500);
                    }
                    if !vary.is_empty() {
                        for v in &vary {
                            r.add_vary(v);
                        }
                        r.keeps_vary = true;
                    }
                    if let RuleResult::Status(s) = rc {
                        return ListResult::Status(s);
                    }
                    if rc == RuleResult::Rewrote {
                        changed = ListResult::Changed {
                            noescape: p.flags.noescape,
                        };
                    }
                    if p.flags.passthrough {
                        self.note(|| TraceEvent::flag(p, Flag::PassThrough));
                        r.filename = format!("passthrough:{}", r.filename);
                        changed = ListResult::Changed { noescape: false };
                        break;
                    }
                    if p.flags.end {
                        self.note(|| TraceEvent::flag(p, Flag::End));
                        r.end = true;
                        break;
                    }
                    if p.flags.proxy || p.flags.last {
                        self.note(|| TraceEvent::flag(p, Flag::Last));
                        break;
                    }
                    if p.flags.next {
                        self.note(|| TraceEvent::flag(p, Flag::Next(round + 1)));
                        round += 1;
                        if !htgate_util::budget::charge(
                            htgate_util::budget::Work::Rounds,
                            htgate_util::budget::ROUND,
                        ) {
                            self.budget_spent_at(perdir, p.line, p.col);
                            return ListResult::Status(500);
                        }
                        if round >= p.flags.max_rounds {
                            tracing::error!("RewriteRule `{}` and URI `{}` exceed the maximum number of rounds ({}) via the [N] flag", p.pattern_text, r.filename, p.flags.max_rounds);
                            return ListResult::Status(500);
                        }
                        continue 'restart;
                    }
                    if p.flags.skip > 0 {
                        self.note(|| TraceEvent::flag(p, Flag::Skip(p.flags.skip)));
                    }
                    let mut s = p.flags.skip;
                    while i < rules.len() && s > 0 {
                        i += 1;
                        s -= 1;
                    }
                } else if p.flags.chain {
                    self.note(|| TraceEvent::flag(p, Flag::ChainBroken));
                    while i < rules.len() && rules.get(i).flags.chain {
                        i += 1;
                    }
                }
                i += 1;
            }
            break;
        }
        changed
    }

    // `owed` is the rule loop's: the search's units, charged by the loop
    // with its own check (see there).
    #[allow(clippy::too_many_arguments)]
    fn apply_rewrite_rule(
        &mut self,
        r: &mut Req,
        p: &RewriteRule,
        perdir: &str,
        joined: Option<&str>,
        vary: &mut Vec<String>,
        saved: &mut Option<(String, Option<String>)>,
        owed: &mut u64,
    ) -> RuleResult {
        let mut refs = Refs::default();
        let mut late_captures = false;
        {
            let input = rule_input(r, perdir, joined);
            if self.trace.is_some() {
                let caps = p.pattern.captures(input);
                self.note(|| TraceEvent::rule(p, input, caps.as_ref()));
                match (caps, p.negate) {
                    (Some(c), false) => {
                        refs.rule_subject = input.to_string();
                        refs.rule_caps = c;
                    }
                    (None, true) => {}
                    _ => return RuleResult::NoMatch,
                }
            } else {
                // No allocation until the pattern matches: a search
                // without captures first (most rules of a list do not
                // match), the captures only for a match.
                if p.pattern.is_match_owing(input, owed) == p.negate {
                    return RuleResult::NoMatch;
                }
                // Captures before the conditions only if one reads `$N`;
                // else after them, so a rule whose conditions fail (the
                // force-HTTPS rule on an HTTPS request) copies nothing.
                if !p.negate && needs_rule_captures(p) {
                    if conds_need_rule_captures(p) {
                        match p.pattern.captures(input) {
                            Some(c) => refs.rule_caps = c,
                            None => return RuleResult::NoMatch,
                        }
                        refs.rule_subject = input.to_string();
                    } else {
                        late_captures = true;
                    }
                }
            }
        }
        // Conditions (SEMANTICS G1, G2, G12)
        let conds = &p.conds;
        let mut i = 0;
        while i < conds.len() {
            let c = &conds[i];
            let mut vary_this: Vec<String> = Vec::new();
            let rc = self.apply_rewrite_cond(r, c, &mut refs, &mut vary_this);
            if c.novary {
                vary_this.clear();
            }
            if c.ornext {
                if !rc {
                    i += 1;
                    continue;
                }
                while i < conds.len() && conds[i].ornext {
                    i += 1;
                }
            } else if !rc {
                return RuleResult::NoMatch;
            }
            vary.extend(vary_this);
            i += 1;
        }
        if late_captures {
            // The conditions only read the request: the input is the same.
            let input = rule_input(r, perdir, joined);
            match p.pattern.captures(input) {
                Some(c) => refs.rule_caps = c,
                None => return RuleResult::NoMatch,
            }
            refs.rule_subject = input.to_string();
        }
        // Saved once the rule applies (conditions only read the request):
        // a rule whose conditions fail copies nothing.
        if saved.is_none() {
            *saved = Some((r.filename.clone(), r.args.clone()));
        }
        if p.flags.nosub {
            self.apply_env_and_cookies(r, p, &refs);
            self.apply_type_and_handler(r, p, &refs);
            if p.flags.status_rule {
                self.note(|| TraceEvent::flag(p, Flag::Status(p.flags.status)));
                return RuleResult::Status(p.flags.status);
            }
            self.note(|| TraceEvent::flag(p, Flag::NoSubstitution));
            return RuleResult::NoSub;
        }
        let Some(subst) = &p.subst else {
            return RuleResult::NoSub;
        };
        let (mut newuri, qmarks) = self.expand(r, subst, &refs, p.flags.escape_backrefs.as_ref());
        self.apply_env_and_cookies(r, p, &refs);
        // S2 (CVE-2024-38474): a `?` that came from an expansion.
        if !p.flags.unsafe_allow_3f {
            let decisive = if p.flags.qslast {
                qmarks.last()
            } else {
                qmarks.first()
            };
            if let Some((_, literal)) = decisive {
                if !literal {
                    tracing::warn!(
                        "AH10508: unsafe URL with %3f URL rewritten without UnsafeAllow3F"
                    );
                    self.note(|| TraceEvent::flag(p, Flag::Unsafe3F));
                    return RuleResult::Status(403);
                }
            }
        }
        // R4: leading slashes of a local result are merged.
        if absolute_uri_prefix(&newuri).is_none()
            && newuri.starts_with("//")
            && !p.flags.unc
            && !p.subst_double_slash
        {
            let trimmed = newuri.trim_start_matches('/');
            newuri = format!("/{trimmed}");
        }
        r.filename = newuri;
        if p.flags.discard_path_info {
            r.path_info.clear();
        }
        self.splitout_queryargs(r, p);
        if !r.filename.starts_with('/') && absolute_uri_prefix(&r.filename).is_none() {
            r.filename = format!("{perdir}{}", r.filename);
        }
        self.note(|| TraceEvent::substitution(p, r));
        if p.flags.proxy {
            self.fully_qualify(r);
            r.filename = format!("proxy:{}", r.filename);
            return RuleResult::Rewrote;
        }
        if p.flags.force_redirect {
            self.fully_qualify(r);
            self.note(|| TraceEvent::flag(p, Flag::Redirect(p.flags.status)));
            r.status = p.flags.status;
            return RuleResult::Rewrote;
        }
        self.reduce_uri(r);
        if absolute_uri_prefix(&r.filename).is_some() {
            r.status = p.flags.status;
            return RuleResult::Rewrote;
        }
        // R10: a handler replaces redirect-handler, so the internal redirect
        // never happens and the file `redirect:...` is 404.
        self.apply_type_and_handler(r, p, &refs);
        RuleResult::Rewrote
    }

    /// `[T=]` and `[H=]`: expanded like the substitution, lower-cased.
    fn apply_type_and_handler(&mut self, r: &mut Req, p: &RewriteRule, refs: &Refs) {
        if let Some(t) = &p.flags.forced_type {
            let v = self.expand(r, t, refs, None).0.to_ascii_lowercase();
            r.forced_type = Some(v);
        }
        if let Some(h) = &p.flags.forced_handler {
            let v = self.expand(r, h, refs, None).0.to_ascii_lowercase();
            r.handler = Handler::Named(v);
        }
    }

    fn apply_env_and_cookies(&mut self, r: &mut Req, p: &RewriteRule, refs: &Refs) {
        for e in &p.flags.env {
            match e {
                EnvFlag::Set(n, v) => {
                    let name = self.expand(r, n, refs, None).0;
                    let value = self.expand(r, v, refs, None).0;
                    self.note(|| TraceEvent::env(p, &name, Some(&value)));
                    r.env_set(&name, &value);
                }
                EnvFlag::Unset(n) => {
                    let name = self.expand(r, n, refs, None).0;
                    self.note(|| TraceEvent::env(p, &name, None));
                    r.env_unset(&name);
                }
            }
        }
        for c in &p.flags.cookies {
            let spec = self.expand(r, c, refs, None).0;
            self.add_cookie(&spec);
        }
    }

    /// `add_cookie` (SEMANTICS FL3).
    fn add_cookie(&mut self, spec: &str) {
        let (sep, body) = match spec.strip_prefix(';') {
            Some(rest) => (';', rest),
            None => (':', spec),
        };
        // strtok: empty fields collapse
        let fields: Vec<&str> = body.split(sep).filter(|f| !f.is_empty()).collect();
        if fields.len() < 3 {
            return;
        }
        let (name, value, domain) = (fields[0], fields[1], fields[2]);
        if self.cookies_set.iter().any(|n| n == name) {
            return;
        }
        let mut cookie = format!("{name}={value}; path=");
        let path = fields.get(4).copied().unwrap_or("/");
        cookie.push_str(path);
        cookie.push_str("; domain=");
        cookie.push_str(domain);
        if let Some(life) = fields.get(3) {
            let minutes = htgate_util::atoi(life);
            if minutes > 0 {
                let when = chrono::Utc::now() + chrono::Duration::minutes(minutes);
                cookie.push_str(&when.format("; expires=%a, %d-%b-%Y %T GMT").to_string());
            }
        }
        let flag = |s: Option<&&str>| {
            s.map(|v| {
                v.eq_ignore_ascii_case("secure")
                    || v.eq_ignore_ascii_case("httponly")
                    || v.eq_ignore_ascii_case("true")
                    || *v == "1"
            })
            .unwrap_or(false)
        };
        let secure = flag(fields.get(5));
        let httponly = flag(fields.get(6));
        // Apache's NULL-terminated concatenation drops the rest when secure
        // is off (SEMANTICS FL3 quirk).
        if secure {
            cookie.push_str("; secure");
            if httponly {
                cookie.push_str("; HttpOnly");
            }
        }
        if let Some(ss) = fields.get(7) {
            if !(ss.eq_ignore_ascii_case("0") || ss.eq_ignore_ascii_case("false")) {
                cookie.push_str("; SameSite=");
                cookie.push_str(ss);
            }
        }
        self.cookies_set.push(name.to_string());
        self.err_headers_out
            .push(("Set-Cookie".to_string(), cookie));
    }

    /// A `RewriteCond expr "..."`.  The headers the expression read are
    /// the rule's Vary too: kept across the internal redirect of a rule
    /// that applies (recorded in fixtures/conformance/htgate-vary-from-expr).
    fn expr_cond(
        &mut self,
        r: &mut Req,
        e: &htgate_syntax::expr::Expr,
        negate: bool,
        refs: &mut Refs,
        vary: &mut Vec<String>,
    ) -> bool {
        let before = r.vary.len();
        let outcome = self.eval_expr(r, e);
        vary.extend(r.vary.get(before..).unwrap_or_default().iter().cloned());
        let Ok(o) = outcome else {
            return false;
        };
        if o.value && !negate && !o.captures.is_empty() {
            // expr captures feed %N like a regex condition
            let mut s = String::new();
            let mut caps = Vec::new();
            for part in &o.captures {
                let start = s.len();
                s.push_str(part.as_deref().unwrap_or_default());
                caps.push(Some((start, s.len())));
            }
            refs.cond_subject = s;
            refs.cond_caps = caps;
        }
        o.value
    }

    fn apply_rewrite_cond(
        &mut self,
        r: &mut Req,
        c: &RewriteCond,
        refs: &mut Refs,
        vary: &mut Vec<String>,
    ) -> bool {
        // The test string is expanded into a per-thread buffer that is
        // reused (rules run inline on the worker, never across an await):
        // a condition that fails allocates nothing.
        let mut subject = COND_SUBJECT.with(std::cell::Cell::take);
        subject.clear();
        self.expand_noting_into(r, &c.test, refs, vary, &mut subject);
        let result = match &c.kind {
            // A search without captures first: captures only for a match
            // whose groups can be used (%N), never for a negated pattern.
            CondKind::Regex(p) if c.negate => p.is_match(&subject),
            CondKind::Regex(p) => match p.is_match(&subject).then(|| p.captures(&subject)) {
                Some(Some(caps)) => {
                    refs.cond_subject.clear();
                    refs.cond_subject.push_str(&subject);
                    refs.cond_caps = caps;
                    true
                }
                _ => false,
            },
            CondKind::Expr(e) => self.expr_cond(r, e, c.negate, refs, vary),
            // The request's (or the site's) stat results: the walk has
            // usually stat'ed %{REQUEST_FILENAME} already.
            CondKind::FileDir => self.test_path(&subject).kind == FileKind::Dir,
            CondKind::FileRegular => self.test_path(&subject).kind == FileKind::File,
            CondKind::FileNonEmpty => self
                .test_path(&subject)
                .meta
                .is_some_and(|m| m.is_file() && m.len() > 0),
            CondKind::FileSymlink => self.test_path(&subject).is_symlink(),
            CondKind::FileExecutable => {
                use std::os::unix::fs::MetadataExt;
                self.test_path(&subject)
                    .meta
                    .is_some_and(|m| m.mode() & 0o111 != 0)
            }
            CondKind::FileSubreq => {
                if subject.is_empty() {
                    false
                } else {
                    let parent = r.clone();
                    match self.subrequest_file(&parent, &subject) {
                        Ok(rr) => rr.status < 300 && rr.finfo == FileKind::File,
                        Err(_) => false,
                    }
                }
            }
            CondKind::UrlSubreq => {
                if subject.is_empty() || (r.is_subreq && subject == r.uri) {
                    false
                } else {
                    let parent = r.clone();
                    let target = escape::escape_uri(&subject);
                    match self.subrequest_uri(&parent, &target) {
                        Ok(rr) => rr.status < 400,
                        Err(stop) => stop.status < 400,
                    }
                }
            }
            CondKind::StrCmp(op, t) => {
                let other = self.expand(r, t, refs, None).0;
                compare_lexicographic(&subject, &other, *op, c.nocase)
            }
            CondKind::IntCmp(op, t) => {
                let other = self.expand(r, t, refs, None).0;
                let a = htgate_util::atoi(&subject);
                let b = htgate_util::atoi(&other);
                match op {
                    IntOp::Lt => a < b,
                    IntOp::Le => a <= b,
                    IntOp::Eq => a == b,
                    IntOp::Gt => a > b,
                    IntOp::Ge => a >= b,
                }
            }
        };
        let matched = result != c.negate;
        self.note(|| TraceEvent::cond(c, &subject, matched, &refs.cond_subject, &refs.cond_caps));
        // Kept for the next condition unless one huge subject would pin
        // its memory to the thread.
        if subject.capacity() <= 16 * 1024 {
            COND_SUBJECT.with(|b| b.set(subject));
        }
        matched
    }

    /// `expand_noting` into `out` (appended).
    fn expand_noting_into(
        &mut self,
        r: &mut Req,
        t: &Template,
        refs: &Refs,
        vary: &mut Vec<String>,
        out: &mut String,
    ) {
        self.note_vary(t, vary);
        let mut qmarks = Vec::new();
        self.expand_into(r, t, refs, None, out, &mut qmarks);
    }

    /// The headers a template reads, for the Vary header.
    fn note_vary(&self, t: &Template, vary: &mut Vec<String>) {
        for v in t.vars() {
            if let Var::Header {
                name: header,
                vary: Some(name),
            } = v
            {
                // Apache notes a header only when the request has it
                // (mod_rewrite.c lookup_header: `if (val && ...)`).
                if !self.headers_in.contains_key(header.as_str()) {
                    continue;
                }
                if !vary.iter().any(|x| x == name) {
                    vary.push(name.clone());
                }
            }
        }
    }

    /// `do_expand`.  Returns the text and, for each `?` in it, whether it was
    /// written literally in the rule (for the S2 check).
    fn expand(
        &mut self,
        r: &mut Req,
        t: &Template,
        refs: &Refs,
        escape_backrefs: Option<&escape::BackrefEscape>,
    ) -> (String, Vec<(usize, bool)>) {
        let mut out = String::new();
        let mut qmarks = Vec::new();
        self.expand_into(r, t, refs, escape_backrefs, &mut out, &mut qmarks);
        (out, qmarks)
    }

    /// `expand`, appending to `out` (its `?` positions to `qmarks`).
    fn expand_into(
        &mut self,
        r: &mut Req,
        t: &Template,
        refs: &Refs,
        escape_backrefs: Option<&escape::BackrefEscape>,
        out: &mut String,
        qmarks: &mut Vec<(usize, bool)>,
    ) {
        let base = out.len();
        // One allocation for the usual result (a URL), not one per
        // doubling as the pieces are appended.
        out.reserve(128);
        for piece in &t.pieces {
            let start = out.len();
            let literal = matches!(piece, Piece::Lit(_));
            match piece {
                // written straight into the result: no copy per piece
                Piece::Lit(s) => out.push_str(s),
                Piece::RuleRef(n) => {
                    let v = capture_text(&refs.rule_subject, &refs.rule_caps, *n as usize);
                    out.push_str(&esc(v, escape_backrefs));
                }
                Piece::CondRef(n) => {
                    let v = capture_text(&refs.cond_subject, &refs.cond_caps, *n as usize);
                    out.push_str(&esc(v, escape_backrefs));
                }
                Piece::Var(v) => self.push_var(r, v, out),
                Piece::Map { default, .. } => {
                    // No RewriteMap can exist in .htaccess: the default.
                    let v = self.expand(r, default, refs, None).0;
                    out.push_str(&v);
                }
            }
            for (i, b) in out.as_bytes()[start..].iter().enumerate() {
                if *b == b'?' {
                    qmarks.push((start + i, literal));
                }
            }
            if out.len() - base > 64 * 1024 {
                // SECURITY: cap the size of any expansion.
                out.truncate(base + 64 * 1024);
                break;
            }
        }
    }

    /// Appends a variable's value to `out`, without an intermediate
    /// `String` for the variables conditions test most (HTTPS, the file
    /// name, the URI, the host and environment variables).
    fn push_var(&mut self, r: &mut Req, v: &Var, out: &mut String) {
        use super::template::Named::*;
        match v {
            Var::Env(n) => out.push_str(r.env_get(n).unwrap_or("")),
            Var::Ssl(n) => out.push_str(super::template::ssl_var(n, self.tls)),
            Var::Header { name, .. } => {
                let mut values = self.headers_in.get_all(name.as_str()).iter();
                if let Some(first) = values.next() {
                    out.push_str(&String::from_utf8_lossy(first.as_bytes()));
                    for v in values {
                        out.push_str(", ");
                        out.push_str(&String::from_utf8_lossy(v.as_bytes()));
                    }
                }
            }
            Var::Named(n) => match n {
                ScriptFilename | RequestFilename => out.push_str(&r.filename),
                PathInfo => out.push_str(&r.path_info),
                QueryString => out.push_str(r.args.as_deref().unwrap_or("")),
                RequestUri => out.push_str(&r.uri),
                RequestMethod => out.push_str(&self.method),
                ServerName => out.push_str(&self.server_name),
                DocumentRoot | ContextDocumentRoot => out.push_str(&self.site.docroot),
                Https => out.push_str(if self.tls { "on" } else { "off" }),
                RequestScheme => out.push_str(if self.tls { "https" } else { "http" }),
                IsSubreq => out.push_str(if r.is_subreq { "true" } else { "false" }),
                _ => out.push_str(&self.named_var(r, *n)),
            },
            Var::Empty => {}
            _ => {
                let value = self.lookup_var(r, v);
                out.push_str(&value);
            }
        }
    }

    fn lookup_var(&mut self, r: &mut Req, v: &Var) -> String {
        match v {
            Var::Header { name, .. } => self.header(name).unwrap_or_default(),
            Var::Env(n) => r.env_get(n).unwrap_or("").to_string(),
            Var::Ssl(n) => super::template::ssl_var(n, self.tls).to_string(),
            Var::LookAheadUrl(n) => {
                if r.is_subreq {
                    return String::new();
                }
                let parent = r.clone();
                let target = escape::escape_uri(&r.uri);
                match self.subrequest_uri(&parent, &target) {
                    Ok(mut rr) => {
                        let var = Var::resolve(n);
                        self.lookup_var(&mut rr, &var)
                    }
                    Err(_) => String::new(),
                }
            }
            Var::LookAheadFile(n) => {
                if r.is_subreq {
                    return String::new();
                }
                let parent = r.clone();
                let path = r.filename.clone();
                match self.subrequest_file(&parent, &path) {
                    Ok(mut rr) => {
                        let var = Var::resolve(n);
                        self.lookup_var(&mut rr, &var)
                    }
                    Err(_) => String::new(),
                }
            }
            Var::Named(n) => self.named_var(r, *n),
            Var::Empty => String::new(),
        }
    }

    /// The fixed variables (`lookup_variable`).
    pub(crate) fn named_var(&self, r: &Req, n: Named) -> String {
        use Named::*;
        // The local time only for the TIME variables (the time zone
        // look-up is not free).
        let now = || Local::now();
        match n {
            RemoteAddr | RemoteHost | ConnRemoteAddr => self.remote.ip().to_string(),
            RemotePort => self.remote.port().to_string(),
            RemoteUser => self.user.clone().unwrap_or_default(),
            AuthType => {
                if self.user.is_some() {
                    "Basic".to_string()
                } else {
                    String::new()
                }
            }
            RemoteIdent => String::new(),
            RequestMethod => self.method.clone(),
            ScriptFilename | RequestFilename => r.filename.clone(),
            PathInfo => r.path_info.clone(),
            QueryString => r.args.clone().unwrap_or_default(),
            DocumentRoot | ContextDocumentRoot => self.site.docroot.clone(),
            ContextPrefix => String::new(),
            ServerAdmin => "webmaster@localhost".into(),
            ServerName => self.server_name.clone(),
            ServerAddr => self.local.ip().to_string(),
            ServerPort => self.server_port.to_string(),
            ServerProtocol => self.protocol.clone(),
            ServerSoftware => "Apache".into(),
            ApiVersion => "20120211:137".into(),
            TheRequest => self.the_request.clone(),
            RequestUri => r.uri.clone(),
            RequestScheme => if self.tls { "https" } else { "http" }.into(),
            Https => if self.tls { "on" } else { "off" }.into(),
            IsSubreq => if r.is_subreq { "true" } else { "false" }.into(),
            Ipv6 => if self.remote.is_ipv6() { "on" } else { "off" }.into(),
            ScriptUser | ScriptGroup => {
                use std::os::unix::fs::MetadataExt;
                match &r.meta {
                    Some(m) => {
                        if n == ScriptUser {
                            m.uid().to_string()
                        } else {
                            m.gid().to_string()
                        }
                    }
                    None => "<unknown>".into(),
                }
            }
            Time => now().format("%Y%m%d%H%M%S").to_string(),
            TimeYear => format!("{:04}", now().year()),
            TimeMon => format!("{:02}", now().month()),
            TimeDay => format!("{:02}", now().day()),
            TimeHour => format!("{:02}", now().hour()),
            TimeMin => format!("{:02}", now().minute()),
            TimeSec => format!("{:02}", now().second()),
            TimeWday => now().weekday().num_days_from_sunday().to_string(),
        }
    }

    /// `splitout_queryargs` (SEMANTICS Q1-Q5).
    fn splitout_queryargs(&self, r: &mut Req, p: &RewriteRule) {
        if p.flags.qsnone {
            r.args = None;
            return;
        }
        let (skip, takes_query) = match absolute_uri_prefix(&r.filename) {
            Some((s, q)) => (s, q),
            None => (0, true),
        };
        if skip > 0 && !takes_query {
            r.args = None;
            return;
        }
        if p.flags.qsdiscard {
            r.args = None;
        }
        let tail = &r.filename[skip..];
        let q = if p.flags.qslast {
            tail.rfind('?')
        } else {
            tail.find('?')
        };
        if let Some(q) = q {
            let pos = skip + q;
            let query = r.filename[pos + 1..].to_string();
            r.filename.truncate(pos);
            if p.flags.qsappend {
                if !query.is_empty() {
                    r.args = Some(match &r.args {
                        Some(old) => format!("{query}&{old}"),
                        None => format!("{query}&"),
                    });
                }
            } else {
                r.args = Some(query);
            }
            if let Some(a) = &mut r.args {
                if a.is_empty() {
                    r.args = None;
                } else if a.ends_with('&') {
                    a.pop();
                    if a.is_empty() {
                        r.args = None;
                    }
                }
            }
        }
    }

    /// `fully_qualify_uri`.
    fn fully_qualify(&self, r: &mut Req) {
        if absolute_uri_prefix(&r.filename).is_none() {
            let sep = if r.filename.starts_with('/') { "" } else { "/" };
            r.filename = format!("{}{sep}{}", self.self_prefix(), r.filename);
        }
    }

    /// `reduce_uri`: a full URL naming this server becomes a local path.
    fn reduce_uri(&self, r: &mut Req) {
        let Some((skip, _)) = absolute_uri_prefix(&r.filename) else {
            return;
        };
        let scheme = r.filename[..skip].to_ascii_lowercase();
        let own_scheme = if self.tls { "https://" } else { "http://" };
        if scheme != own_scheme {
            return;
        }
        let rest = &r.filename[skip..];
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {
                (h, p.parse::<u16>().ok())
            }
            _ => (hostport, None),
        };
        let default = if self.tls {
            self.site.https_port
        } else {
            self.site.http_port
        };
        let port = port.unwrap_or(if self.tls { 443 } else { 80 });
        if port != default {
            return;
        }
        let host_l = host.to_ascii_lowercase();
        if self.site.is_own_name(&host_l) || host_l == self.server_name {
            r.filename = path.to_string();
        }
    }
}

fn esc(v: String, how: Option<&escape::BackrefEscape>) -> String {
    match how {
        Some(h) => escape::escape_backref(&v, h),
        None => v,
    }
}

/// What a rule's pattern is matched against: the file name and
/// PATH_INFO, without the rules' directory.  Without PATH_INFO (the usual
/// case) it is a part of the file name; with it, `joined` (from
/// [`joined_input`]).
fn rule_input<'r>(r: &'r Req, perdir: &str, joined: Option<&'r str>) -> &'r str {
    match joined {
        Some(j) => j,
        None => r.filename.strip_prefix(perdir).unwrap_or(&r.filename),
    }
}

/// The subject of the rules when the request has PATH_INFO (a copy).
fn joined_input(r: &Req, perdir: &str) -> Option<String> {
    if r.path_info.is_empty() {
        return None;
    }
    let full = [r.filename.as_str(), r.path_info.as_str()];
    let skip = if r.filename.len() >= perdir.len() {
        usize::from(r.filename.starts_with(perdir)) * perdir.len()
    } else {
        // the directory ends inside PATH_INFO
        let joined = full.concat();
        return Some(match joined.strip_prefix(perdir) {
            Some(rest) => rest.to_string(),
            None => joined,
        });
    };
    let mut input = String::with_capacity(r.filename.len() - skip + r.path_info.len());
    input.push_str(&r.filename[skip..]);
    input.push_str(&r.path_info);
    Some(input)
}

/// Whether anything of rule `p` uses its back-references (`$N`): if not,
/// a match needs no capture groups (nor a copy of the subject).
fn uses_rule_refs(t: &Template) -> bool {
    t.pieces.iter().any(|piece| match piece {
        Piece::RuleRef(_) => true,
        Piece::Map { key, default, .. } => uses_rule_refs(key) || uses_rule_refs(default),
        _ => false,
    })
}

/// Whether a condition of `p` reads `$N`: then the rule's captures are
/// needed before the conditions run.
fn conds_need_rule_captures(p: &RewriteRule) -> bool {
    p.conds.iter().any(|c| {
        uses_rule_refs(&c.test)
            || match &c.kind {
                CondKind::StrCmp(_, t) | CondKind::IntCmp(_, t) => uses_rule_refs(t),
                _ => false,
            }
    })
}

fn needs_rule_captures(p: &RewriteRule) -> bool {
    let uses = uses_rule_refs;
    p.subst.as_ref().is_some_and(uses)
        || p.flags.env.iter().any(|e| match e {
            EnvFlag::Set(n, v) => uses(n) || uses(v),
            EnvFlag::Unset(n) => uses(n),
        })
        || p.flags.cookies.iter().any(uses)
        || p.flags.forced_type.as_ref().is_some_and(uses)
        || p.flags.forced_handler.as_ref().is_some_and(uses)
        || p.conds.iter().any(|c| {
            uses(&c.test)
                || match &c.kind {
                    CondKind::StrCmp(_, t) | CondKind::IntCmp(_, t) => uses(t),
                    _ => false,
                }
        })
}

/// `subst_prefix_path`: replace the prefix `match_` (ending at a `/`) of
/// `input` with `subst` (which is given a trailing slash).
fn subst_prefix_path(input: &str, match_: &str, subst: &str) -> String {
    let m = match_.strip_suffix('/').unwrap_or(match_);
    if input.starts_with(m) && input.as_bytes().get(m.len()) == Some(&b'/') {
        let rest = &input[m.len() + 1..];
        let mut out = subst.to_string();
        if !out.is_empty() && !out.ends_with('/') {
            out.push('/');
        }
        out.push_str(rest);
        return out;
    }
    input.to_string()
}

/// `compare_lexicographic`: lengths first, then bytes (SEMANTICS G6).
fn compare_lexicographic(a: &str, b: &str, op: StrOp, nocase: bool) -> bool {
    use std::cmp::Ordering;
    let ord = if nocase {
        a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase())
    } else if a.len() != b.len() {
        a.len().cmp(&b.len())
    } else {
        a.as_bytes().cmp(b.as_bytes())
    };
    match op {
        StrOp::Eq => {
            if nocase {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        }
        StrOp::Lt => ord == Ordering::Less,
        StrOp::Le => ord != Ordering::Greater,
        StrOp::Gt => ord == Ordering::Greater,
        StrOp::Ge => ord != Ordering::Less,
    }
}

/// `ap_scan_vchar_obstext` found something: a control character or space.
fn has_ctl_or_space(s: &str) -> bool {
    s.bytes().any(|b| b <= 0x20 || b == 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexicographic_quirk() {
        assert!(!compare_lexicographic("10", "9", StrOp::Lt, false));
        assert!(compare_lexicographic("8", "9", StrOp::Lt, false));
        assert!(!compare_lexicographic("aa", "b", StrOp::Lt, false));
        assert!(compare_lexicographic("aa", "b", StrOp::Lt, true));
    }

    #[test]
    fn prefix_subst() {
        assert_eq!(
            subst_prefix_path("/srv/shop/x.html", "/srv/shop/", "/shop/"),
            "/shop/x.html"
        );
        assert_eq!(subst_prefix_path("srv/shop/x", "srv/shop/", ""), "x");
        assert_eq!(
            subst_prefix_path("/other/x", "/srv/shop/", "/shop/"),
            "/other/x"
        );
    }
}

thread_local! {
    /// The reusable buffer of condition test strings (see
    /// `apply_rewrite_cond`).
    static COND_SUBJECT: std::cell::Cell<String> = const { std::cell::Cell::new(String::new()) };
}
