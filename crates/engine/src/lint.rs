//! `htgate check`'s lints: warnings for the classic `.htaccess` mistakes
//! that compile fine but misbehave, each with `file:line:col`, a short why
//! and a suggested fix.
//!
//! - redirect loops (force-HTTPS without an HTTPS condition, host
//!   canonicalisation without a host condition, a target that matches its
//!   own rule), found by playing requests through the rules;
//! - `[L]` where `[END]` is needed (an internal rewrite that loops);
//! - a relative substitution without RewriteBase where it matters;
//! - rules that catch `/.well-known/acme-challenge/`;
//! - regular expressions that can be slow on the backtracking engine;
//! - `%{HTTP:HTTPS}`-style proxy headers, which only a trusted proxy makes
//!   true.
//!
//! The rules come compiled ([`DirConfig`]); the positions come from the
//! syntax tree, by line (one directive per line).

mod regex_cost;
mod scenarios;
mod sim;

use super::config::DirConfig;
use super::rewrite::{parseargline, CondKind, RewriteRule};
use super::template::{Piece, Template, Var};
use htgate_syntax::htaccess::{Diagnostic, Directive, Node, Span};
use std::collections::HashMap;

/// What the linter knows about where the file is.
#[derive(Debug, Clone, Default)]
pub struct LintOptions {
    /// Whether the file's directory is below the site's document root
    /// (`None`: unknown, taken as the root).
    pub in_subfolder: Option<bool>,
    /// The folder's URL path when known (`/shop/`), for the suggestions.
    pub url_path: Option<String>,
}

/// The lint warnings of one file.  `config` is what `source` compiled to;
/// a file with errors is not linted (its errors come first).
pub fn lint_source(source: &[u8], config: &DirConfig, opts: &LintOptions) -> Vec<Diagnostic> {
    let (file, _) = htgate_syntax::htaccess::parse(source);
    let mut lines: HashMap<u32, &Directive> = HashMap::new();
    let mut sections = Vec::new();
    index(&file.nodes, &mut lines, &mut sections);
    let mut l = Linter {
        lines,
        out: Vec::new(),
    };
    let top = config.rewrite.as_ref();
    let base = top.and_then(|rw| rw.base.as_deref());
    let mut all_rules: Vec<&RewriteRule> = Vec::new();
    if let Some(rw) = top {
        all_rules.extend(rw.rules.iter());
    }
    for f in &config.files {
        if let Some(rw) = &f.config.rewrite {
            all_rules.extend(rw.rules.iter());
        }
    }
    for chain in &config.ifs {
        for (_, b) in &chain.branches {
            if let Some(rw) = &b.rewrite {
                all_rules.extend(rw.rules.iter());
            }
        }
    }
    for r in &all_rules {
        l.next_without_change(r);
        l.slow_regex(r);
        l.proxy_headers(r);
        l.relative_substitution(r, base.is_some(), opts);
    }
    l.proxy_headers_elsewhere(&sections);
    if let Some(rw) = top.filter(|rw| rw.engine == Some(true)) {
        let rules = sim::Rules {
            rules: &rw.rules,
            base,
            setenvif: config
                .set_env_if
                .iter()
                .flat_map(|s| s.assignments.iter().map(|(n, _)| n.clone()))
                .collect(),
        };
        let mut found = scenarios::redirect_loops(&rules);
        found.extend(scenarios::end_needed(&rules));
        if opts.in_subfolder != Some(true) {
            found.extend(scenarios::acme_caught(&rules));
        }
        for f in found {
            if let Some(r) = rw.rules.get(f.rule) {
                // the substitution is what loops or catches
                let span = l.rule_arg(r.line, 1);
                l.warn(span, f.message, f.help);
            }
        }
    }
    let mut out = l.out;
    out.sort_by_key(|d| (d.span.line, d.span.col));
    out.dedup();
    out
}

/// Every directive by line, and the `<If>`/`<ElseIf>` sections.
fn index<'a>(
    nodes: &'a [Node],
    lines: &mut HashMap<u32, &'a Directive>,
    sections: &mut Vec<&'a htgate_syntax::htaccess::Section>,
) {
    for n in nodes {
        match n {
            Node::Directive(d) => {
                lines.insert(d.span.line, d);
            }
            Node::Section(s) => {
                if s.name.eq_ignore_ascii_case("if") || s.name.eq_ignore_ascii_case("elseif") {
                    sections.push(s);
                }
                index(&s.body, lines, sections);
            }
        }
    }
}

struct Linter<'a> {
    lines: HashMap<u32, &'a Directive>,
    out: Vec<Diagnostic>,
}

/// Request headers that say "HTTPS" only when a trusted proxy sets them.
const PROXY_HEADERS: [&str; 3] = ["HTTPS", "X-Forwarded-Proto", "Forwarded"];

const PROXY_HELP: &str = "htgate sets `HTTPS: on` and `X-Forwarded-Proto: https` itself on its TLS listener and removes what clients send (unless `client_https_headers = \"pass\"`); behind another TLS proxy, list it in `trusted_proxies` in htgate.toml. On Apache without such a proxy any client can send this header: test `%{HTTPS}` instead";

impl Linter<'_> {
    fn warn(&mut self, span: Span, message: String, help: String) {
        self.out
            .push(Diagnostic::warning(span, message).with_help(help));
    }

    /// The span of argument `idx` (0: pattern or test string, 1:
    /// substitution or condition pattern) of the rewrite directive at
    /// `line`, else of its name.
    fn rule_arg(&self, line: u32, idx: usize) -> Span {
        let Some(d) = self.lines.get(&line) else {
            return Span {
                offset: 0,
                line,
                col: 1,
                len: 1,
            };
        };
        let args = parseargline(&d.raw_args);
        match args.get(idx) {
            Some(a) => {
                let prefix = d.raw_args.get(..a.offset).unwrap_or("");
                Span {
                    offset: d.args_span.offset + a.offset,
                    line: d.args_span.line,
                    col: d.args_span.col + prefix.chars().count() as u32,
                    len: a.text.len().max(1),
                }
            }
            None => Span {
                len: d.name.len(),
                ..d.span
            },
        }
    }

    /// `[N]` on a rule that does not change the URL (`-`): every round
    /// starts again with the same URL, so it runs until the `[N]` ceiling
    /// or the request's work budget stops it with a 500.
    fn next_without_change(&mut self, r: &RewriteRule) {
        if !r.flags.next || r.subst.is_some() {
            return;
        }
        let span = self.rule_arg(r.line, 1);
        self.warn(
            span,
            "`[N]` with `-` starts the rules again with the same URL: it loops".into(),
            "every request that matches repeats the rules until the [N] ceiling or its \
             work budget ends it with a 500; change the URL in the substitution, or drop N"
                .into(),
        );
    }

    /// The CondPattern text of the condition at `line`.
    fn cond_pattern(&self, line: u32) -> Option<String> {
        let d = self.lines.get(&line)?;
        let args = parseargline(&d.raw_args);
        let text = args.get(1)?.text.clone();
        Some(text.strip_prefix('!').map(str::to_string).unwrap_or(text))
    }

    fn slow_regex(&mut self, r: &RewriteRule) {
        if r.pattern.is_backtracking() {
            if let Some(why) = regex_cost::costly(&r.pattern_text) {
                let span = self.rule_arg(r.line, 0);
                self.slow(span, why);
            }
        }
        for c in &r.conds {
            let CondKind::Regex(p) = &c.kind else {
                continue;
            };
            if !p.is_backtracking() {
                continue;
            }
            let Some(text) = self.cond_pattern(c.line) else {
                continue;
            };
            if let Some(why) = regex_cost::costly(&text) {
                let span = self.rule_arg(c.line, 1);
                self.slow(span, why);
            }
        }
    }

    fn slow(&mut self, span: Span, why: &str) {
        self.warn(
            span,
            format!("this regular expression needs the backtracking engine and can be slow: {why}"),
            "htgate gives up such a match after a bounded number of steps and counts it as no match (Apache's PCRE would go on longer): write it without look-around or back-references, e.g. as two RewriteCond lines".into(),
        );
    }

    fn proxy_headers(&mut self, r: &RewriteRule) {
        for c in &r.conds {
            if let Some(h) = proxy_header(&c.test) {
                let span = self.rule_arg(c.line, 0);
                self.proxy_warning(span, &format!("%{{HTTP:{h}}}"));
            }
        }
        if let Some(h) = r.subst.as_ref().and_then(proxy_header) {
            let span = self.rule_arg(r.line, 1);
            self.proxy_warning(span, &format!("%{{HTTP:{h}}}"));
        }
    }

    /// `SetEnvIf X-Forwarded-Proto …` and `<If "%{HTTP:…}">`.
    fn proxy_headers_elsewhere(&mut self, sections: &[&htgate_syntax::htaccess::Section]) {
        let setenvif: Vec<&Directive> = self
            .lines
            .values()
            .filter(|d| {
                d.name.eq_ignore_ascii_case("setenvif")
                    || d.name.eq_ignore_ascii_case("setenvifnocase")
            })
            .copied()
            .collect();
        for d in setenvif {
            if let Some(a) = d.args.first() {
                if let Some(h) = PROXY_HEADERS
                    .iter()
                    .find(|h| a.text.eq_ignore_ascii_case(h))
                {
                    self.proxy_warning(a.span, h);
                }
            }
        }
        for s in sections {
            let lower = s.raw_args.to_ascii_lowercase();
            for h in PROXY_HEADERS {
                let l = h.to_ascii_lowercase();
                let used = lower.contains(&format!("%{{http:{l}}}"))
                    || lower.contains(&format!("req('{l}')"))
                    || lower.contains(&format!("req(\"{l}\")"))
                    || lower.contains(&format!("http('{l}')"));
                if used {
                    let span = Span {
                        len: s.raw_args.len().max(1),
                        ..s.args_span
                    };
                    self.proxy_warning(span, h);
                }
            }
        }
    }

    fn proxy_warning(&mut self, span: Span, what: &str) {
        self.warn(
            span,
            format!("`{what}` is a request header: it only tells HTTPS from HTTP when a proxy you trust sets it"),
            PROXY_HELP.into(),
        );
    }

    fn relative_substitution(&mut self, r: &RewriteRule, has_base: bool, opts: &LintOptions) {
        if has_base {
            return;
        }
        let Some(t) = &r.subst else { return };
        if !relative(t) {
            return;
        }
        let span = self.rule_arg(r.line, 1);
        if r.flags.force_redirect {
            self.warn(
                span,
                "a relative redirect without RewriteBase: the Location gets this folder's path on disk (`https://host/var/www/…`)".into(),
                "start the substitution with `/` (the URL path), or add `RewriteBase /` (the folder's URL path) to the file".into(),
            );
        } else if opts.in_subfolder == Some(true) {
            self.warn(
                span,
                "a relative substitution in a subfolder's .htaccess without RewriteBase: it works only while the folder's URL mirrors its place under the document root (not behind an Alias, a `~user` directory or a different document root)".into(),
                format!(
                    "add `RewriteBase {}` (the folder's URL path) to the file, or start the substitution with `/`",
                    opts.url_path.as_deref().unwrap_or("/folder/")
                ),
            );
        }
    }
}

/// A substitution that is a path relative to the rules' directory.
fn relative(t: &Template) -> bool {
    match t.pieces.first() {
        Some(Piece::Lit(l)) => {
            !l.starts_with('/')
                && crate::rewrite_exec::absolute_uri_prefix(l).is_none()
                && !l.to_ascii_lowercase().starts_with("proxy:")
        }
        // A back-reference to the per-directory path never starts with a
        // slash; variables and condition captures may be anything.
        Some(Piece::RuleRef(_)) => true,
        _ => false,
    }
}

fn proxy_header(t: &Template) -> Option<&'static str> {
    t.vars().find_map(|v| match v {
        Var::Header { name, .. } => PROXY_HEADERS
            .iter()
            .copied()
            .find(|h| name.eq_ignore_ascii_case(h)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::compile_source;

    fn lint_with(src: &str, opts: LintOptions) -> Vec<Diagnostic> {
        let c = compile_source(src.as_bytes());
        assert!(!c.has_errors(), "{:?}", c.diagnostics);
        lint_source(src.as_bytes(), &c.config, &opts)
    }

    fn lint(src: &str) -> Vec<Diagnostic> {
        lint_with(src, LintOptions::default())
    }

    fn has(diags: &[Diagnostic], line: u32, needle: &str) -> bool {
        diags
            .iter()
            .any(|d| d.span.line == line && d.message.contains(needle))
    }

    #[test]
    fn force_https_without_condition_loops() {
        let d = lint("RewriteEngine On\nRewriteRule (.*) https://%{SERVER_NAME}/$1 [R=301,L]\n");
        assert!(has(&d, 2, "force-HTTPS"), "{d:?}");
        assert_eq!(d[0].span.col, 18, "{d:?}");
        assert!(d[0].help.as_deref().is_some_and(|h| h.contains("%{HTTPS}")));
    }

    #[test]
    fn force_https_with_condition_is_fine() {
        for cond in [
            "RewriteCond %{HTTPS} !on",
            "RewriteCond %{HTTPS} off",
            "RewriteCond %{SERVER_PORT} 80",
            "RewriteCond %{REQUEST_SCHEME} =http",
        ] {
            let d = lint(&format!(
                "RewriteEngine On\n{cond}\nRewriteRule (.*) https://%{{SERVER_NAME}}/$1 [R=301,L]\n"
            ));
            assert!(
                !d.iter().any(|d| d.message.contains("loop")),
                "{cond}: {d:?}"
            );
        }
    }

    #[test]
    fn force_https_behind_unknown_condition_still_warns() {
        let d = lint(
            "RewriteEngine On\nRewriteCond %{HTTP_USER_AGENT} !bot\nRewriteRule ^ https://%{HTTP_HOST}%{REQUEST_URI} [R=301,L]\n",
        );
        assert!(has(&d, 3, "force-HTTPS"), "{d:?}");
    }

    #[test]
    fn redirect_matching_its_own_pattern_loops() {
        let d = lint("RewriteEngine On\nRewriteRule ^(.*)$ /new/$1 [R=301,L]\n");
        assert!(has(&d, 2, "which this rule redirects again"), "{d:?}");
        let d = lint(
            "RewriteEngine On\nRewriteCond %{REQUEST_URI} !^/new/\nRewriteRule ^(.*)$ /new/$1 [R=301,L]\n",
        );
        assert!(!d.iter().any(|d| d.message.contains("loop")), "{d:?}");
    }

    #[test]
    fn redirect_after_an_internal_rewrite_loops() {
        // Symfony's rules without their REDIRECT_STATUS guard; the
        // Authorization pass-through (an unknown header) must not hide it.
        let rules = "RewriteCond %{HTTP:Authorization} .+\nRewriteRule ^ - [E=HTTP_AUTHORIZATION:%0]\nRewriteRule ^index\\.php(?:/(.*)|$) /$1 [R=308,L]\nRewriteCond %{REQUEST_FILENAME} !-f\nRewriteRule ^ index.php [L]\n";
        let d = lint(&format!("RewriteEngine On\n{rules}"));
        assert!(has(&d, 4, "is rewritten to `/index.php`"), "{d:?}");
        assert!(d[0]
            .help
            .as_deref()
            .is_some_and(|h| h.contains("REDIRECT_STATUS")));
        let guarded = rules.replace(
            "RewriteRule ^index",
            "RewriteCond %{ENV:REDIRECT_STATUS} ^$\nRewriteRule ^index",
        );
        let d = lint(&format!("RewriteEngine On\n{guarded}"));
        assert!(!d.iter().any(|d| d.message.contains("loop")), "{d:?}");
    }

    #[test]
    fn host_canonicalisation_without_host_condition_loops() {
        let d = lint("RewriteEngine On\nRewriteRule ^(.*)$ http://www.example.org/$1 [R=301,L]\n");
        assert!(has(&d, 2, "no host condition"), "{d:?}");
        let d = lint(
            "RewriteEngine On\nRewriteCond %{HTTP_HOST} !^www\\.example\\.org$ [NC]\nRewriteRule ^(.*)$ http://www.example.org/$1 [R=301,L]\n",
        );
        assert!(!d.iter().any(|d| d.message.contains("loop")), "{d:?}");
    }

    #[test]
    fn internal_rewrite_that_loops_needs_end() {
        let d = lint("RewriteEngine On\nRewriteRule ^(.*)$ index.php/$1 [L]\n");
        assert!(has(&d, 2, "`[L]` does not stop"), "{d:?}");
        assert!(d[0].help.as_deref().is_some_and(|h| h.contains("[END]")));
        for fixed in [
            "RewriteEngine On\nRewriteRule ^(.*)$ index.php/$1 [END]\n",
            "RewriteEngine On\nRewriteCond %{REQUEST_FILENAME} !-f\nRewriteRule ^(.*)$ index.php/$1 [L]\n",
            "RewriteEngine On\nRewriteCond %{REQUEST_URI} !^/index\\.php\nRewriteRule ^(.*)$ index.php/$1 [L]\n",
            // the result names the same file again: R5.3 stops it
            "RewriteEngine On\nRewriteRule ^(.*)$ index.php?q=$1 [L,QSA]\n",
        ] {
            let d = lint(fixed);
            assert!(!d.iter().any(|d| d.message.contains("[L]")), "{fixed}: {d:?}");
        }
    }

    #[test]
    fn relative_substitution_in_a_subfolder() {
        let src =
            "RewriteEngine On\nRewriteCond %{REQUEST_FILENAME} !-f\nRewriteRule . index.php [L]\n";
        let sub = LintOptions {
            in_subfolder: Some(true),
            url_path: Some("/shop/".into()),
        };
        let d = lint_with(src, sub.clone());
        assert!(has(&d, 3, "subfolder"), "{d:?}");
        assert!(d[0]
            .help
            .as_deref()
            .is_some_and(|h| h.contains("RewriteBase /shop/")));
        assert!(!lint(src).iter().any(|d| d.message.contains("subfolder")));
        let based = "RewriteEngine On\nRewriteBase /shop/\nRewriteCond %{REQUEST_FILENAME} !-f\nRewriteRule . index.php [L]\n";
        assert!(!lint_with(based, sub)
            .iter()
            .any(|d| d.message.contains("RewriteBase")));
    }

    #[test]
    fn relative_redirect_without_base() {
        let d = lint("RewriteEngine On\nRewriteRule ^old$ new [R=301,L]\n");
        assert!(has(&d, 2, "relative redirect"), "{d:?}");
        let d = lint("RewriteEngine On\nRewriteBase /\nRewriteRule ^old$ new [R=301,L]\n");
        assert!(!d.iter().any(|d| d.message.contains("relative")), "{d:?}");
    }

    #[test]
    fn catch_all_rules_catch_acme_challenges() {
        for (src, line) in [
            ("RewriteEngine On\nRewriteRule ^ - [F]\n", 2),
            ("RewriteEngine On\nRewriteRule ^(.*)$ index.php [L]\n", 2),
            (
                "RewriteEngine On\nRewriteRule ^(.*)$ https://new.example.org/ [R=301,L]\n",
                2,
            ),
        ] {
            let d = lint(src);
            assert!(has(&d, line, "acme-challenge"), "{src}: {d:?}");
        }
        for src in [
            "RewriteEngine On\nRewriteRule ^\\.well-known/acme-challenge/ - [L]\nRewriteRule ^ - [F]\n",
            "RewriteEngine On\nRewriteCond %{REQUEST_FILENAME} !-f\nRewriteRule ^(.*)$ index.php [L]\n",
            "RewriteEngine On\nRewriteCond %{REQUEST_URI} !^/\\.well-known/\nRewriteRule ^ - [F]\n",
            // force-HTTPS keeps the path: the validation follows it
            "RewriteEngine On\nRewriteCond %{HTTPS} !=on\nRewriteRule ^ https://%{HTTP_HOST}%{REQUEST_URI} [R=301,L]\n",
        ] {
            let d = lint(src);
            assert!(!d.iter().any(|d| d.message.contains("acme")), "{src}: {d:?}");
        }
        // challenges are answered at the site root only
        let sub = LintOptions {
            in_subfolder: Some(true),
            url_path: None,
        };
        let d = lint_with("RewriteEngine On\nRewriteRule ^ - [F]\n", sub);
        assert!(!d.iter().any(|d| d.message.contains("acme")), "{d:?}");
    }

    #[test]
    fn slow_regex() {
        let d = lint("RewriteEngine On\nRewriteRule ^(?=.*admin).*$ - [F]\n");
        assert!(has(&d, 2, "backtracking"), "{d:?}");
        let d = lint(
            "RewriteEngine On\nRewriteCond %{QUERY_STRING} ^((?!x).)*$\nRewriteRule ^ - [F]\n",
        );
        assert!(has(&d, 2, "backtracking"), "{d:?}");
        assert_eq!(
            d.iter().find(|d| d.span.line == 2).map(|d| d.span.col),
            Some(29)
        );
        // cheap look-ahead and plain regexes: nothing
        let d = lint(
            "RewriteEngine On\nRewriteRule ^\\.(?!well-known/) - [F]\nRewriteRule ^(a+)+$ - [F]\n",
        );
        assert!(
            !d.iter().any(|d| d.message.contains("backtracking")),
            "{d:?}"
        );
    }

    #[test]
    fn proxy_headers_are_flagged() {
        let d = lint(
            "RewriteEngine On\nRewriteCond %{HTTP:X-Forwarded-Proto} !https\nRewriteRule ^ https://%{HTTP_HOST}%{REQUEST_URI} [R=301,L]\n",
        );
        assert!(has(&d, 2, "X-Forwarded-Proto"), "{d:?}");
        assert!(d.iter().any(|d| d
            .help
            .as_deref()
            .is_some_and(|h| h.contains("trusted_proxies"))));
        let d = lint("RewriteEngine On\nRewriteCond %{HTTP:HTTPS} !on\nRewriteRule ^ https://%{HTTP_HOST}%{REQUEST_URI} [R=301,L]\n");
        assert!(has(&d, 2, "HTTP:HTTPS"), "{d:?}");
        let d = lint("SetEnvIf X-Forwarded-Proto https HTTPS=on\n<If \"%{HTTP:X-Forwarded-Proto} == 'https'\">\nHeader set X-Secure 1\n</If>\n");
        assert!(has(&d, 1, "request header"), "{d:?}");
        assert!(has(&d, 2, "request header"), "{d:?}");
        let d = lint("RewriteEngine On\nRewriteCond %{HTTPS} !on\nRewriteRule ^ https://%{HTTP_HOST}%{REQUEST_URI} [R=301,L]\n");
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn next_without_a_change_loops() {
        let d = lint("RewriteEngine On\nRewriteRule ^ - [N=4000000000]\n");
        assert!(has(&d, 2, "loops"), "{d:?}");
        let d = lint("RewriteEngine On\nRewriteRule ^a(.*)$ b$1 [N]\n");
        assert!(!has(&d, 2, "`[N]` with `-`"), "{d:?}");
    }

    #[test]
    fn stock_wordpress_is_clean() {
        let d = lint("<IfModule mod_rewrite.c>\nRewriteEngine On\nRewriteRule .* - [E=HTTP_AUTHORIZATION:%{HTTP:Authorization}]\nRewriteBase /\nRewriteRule ^index\\.php$ - [L]\nRewriteCond %{REQUEST_FILENAME} !-f\nRewriteCond %{REQUEST_FILENAME} !-d\nRewriteRule . /index.php [L]\n</IfModule>\n");
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn rules_without_rewrite_engine_do_not_run() {
        let d = lint("RewriteRule ^(.*)$ /new/$1 [R=301,L]\n");
        assert!(!d.iter().any(|d| d.message.contains("loop")), "{d:?}");
    }
}
