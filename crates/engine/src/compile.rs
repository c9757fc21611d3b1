//! `.htaccess` syntax tree → [`DirConfig`]: the directive table.
//!
//! Every directive htgate knows is listed in [`directive_kind`]; an unknown
//! one is an error, as in Apache (`Invalid command ..., perhaps misspelled`),
//! which makes the whole directory answer 500.  Directives that are accepted
//! but have no effect in htgate give a warning that says so.  All problems of
//! a file are reported in one pass.

use super::access::{
    AccessCompat, AllowFrom, AuthzBlock, AuthzItem, Combine, IpMatch, MethodLimit, Order, Provider,
};
use super::config::*;
use super::headers;
use super::pattern::Pattern;
use super::rewrite::{self, ArgError, RewriteCond, RewriteRule};
use htgate_syntax::expr;
use htgate_syntax::htaccess::{Diagnostic, Directive, File, Node, Section, Span};
use std::sync::Arc;

/// The Apache version htgate behaves as (for `<IfVersion>`).
pub const APACHE_VERSION: (u32, u32, u32) = (2, 4, 71);

/// Modules htgate implements, by source file name and module identifier:
/// `<IfModule>` of these is true.
const MODULES: &[(&str, &str)] = &[
    ("core.c", "core_module"),
    ("http_core.c", "http_module"),
    ("mod_so.c", "so_module"),
    ("event.c", "mpm_event_module"),
    ("mod_authn_core.c", "authn_core_module"),
    ("mod_authn_file.c", "authn_file_module"),
    ("mod_auth_basic.c", "auth_basic_module"),
    ("mod_authz_core.c", "authz_core_module"),
    ("mod_authz_host.c", "authz_host_module"),
    ("mod_authz_user.c", "authz_user_module"),
    ("mod_access_compat.c", "access_compat_module"),
    ("mod_mime.c", "mime_module"),
    ("mod_negotiation.c", "negotiation_module"),
    ("mod_dir.c", "dir_module"),
    ("mod_autoindex.c", "autoindex_module"),
    ("mod_alias.c", "alias_module"),
    ("mod_rewrite.c", "rewrite_module"),
    ("mod_headers.c", "headers_module"),
    ("mod_expires.c", "expires_module"),
    ("mod_env.c", "env_module"),
    ("mod_setenvif.c", "setenvif_module"),
    ("mod_filter.c", "filter_module"),
    ("mod_socache_shmcb.c", "socache_shmcb_module"),
    ("mod_ssl.c", "ssl_module"),
    ("mod_log_config.c", "log_config_module"),
    ("mod_unixd.c", "unixd_module"),
    ("mod_version.c", "version_module"),
];

pub fn module_loaded(name: &str) -> bool {
    MODULES
        .iter()
        .any(|(file, id)| name.eq_ignore_ascii_case(file) || name == *id)
}

/// Modules a site has beyond the reference environment's (which has no
/// mod_deflate and no mod_proxy): a hosted site has mod_deflate, and
/// mod_proxy + mod_proxy_fcgi when it runs PHP-FPM.  They decide which
/// `<IfModule>` blocks apply, as they would on the host's Apache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Modules {
    pub deflate: bool,
    pub proxy_fcgi: bool,
}

impl Modules {
    /// A hosted site's modules.
    pub fn hosting(php: bool) -> Modules {
        Modules {
            deflate: true,
            proxy_fcgi: php,
        }
    }

    pub fn loaded(self, name: &str) -> bool {
        if module_loaded(name) {
            return true;
        }
        let is = |file: &str, id: &str| name.eq_ignore_ascii_case(file) || name == id;
        (self.deflate && is("mod_deflate.c", "deflate_module"))
            || (self.proxy_fcgi
                && (is("mod_proxy.c", "proxy_module")
                    || is("mod_proxy_fcgi.c", "proxy_fcgi_module")))
    }
}

/// The result of compiling one file.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub config: DirConfig,
    pub diagnostics: Vec<Diagnostic>,
}

impl Compiled {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.is_error())
    }
}

/// Parses and compiles one `.htaccess` source.
pub fn compile_source(source: &[u8]) -> Compiled {
    compile_source_with(source, Modules::default())
}

/// [`compile_source`] for a site with `modules` beyond the reference set.
pub fn compile_source_with(source: &[u8], modules: Modules) -> Compiled {
    let (file, mut diags) = htgate_syntax::htaccess::parse(source);
    let count = count_nodes(&file.nodes);
    if count > MAX_DIRECTIVES {
        // SECURITY: one customer's file cannot make a program so large that
        // compiling or running it costs the server more than a real site's
        diags.push(Diagnostic::error(
            Span {
                offset: 0,
                line: 1,
                col: 1,
                len: 1,
            },
            format!("this file has {count} directives; htgate accepts at most {MAX_DIRECTIVES}"),
        ));
        return Compiled {
            config: DirConfig::default(),
            diagnostics: diags,
        };
    }
    let mut c = compile_file_with(&file, modules);
    diags.append(&mut c.diagnostics);
    diags.sort_by_key(|d| (d.span.line, d.span.col));
    Compiled {
        config: c.config,
        diagnostics: diags,
    }
}

/// Directives and sections a file may hold (the largest real-world file,
/// h5bp's, has about 120; WordPress redirect plugins write a few thousand).
pub const MAX_DIRECTIVES: usize = 20_000;

fn count_nodes(nodes: &[Node]) -> usize {
    nodes
        .iter()
        .map(|n| match n {
            Node::Directive(_) => 1,
            Node::Section(s) => 1 + count_nodes(&s.body),
        })
        .sum()
}

/// Compiles a parsed file.
pub fn compile_file(file: &File) -> Compiled {
    compile_file_with(file, Modules::default())
}

/// [`compile_file`] with `modules` beyond the reference set.
pub fn compile_file_with(file: &File, modules: Modules) -> Compiled {
    let mut diags = Vec::new();
    let mut ctx = Context {
        modules,
        ..Default::default()
    };
    compile_nodes(&file.nodes, &mut ctx, &mut diags, Scope::Top);
    let config = ctx.finish();
    Compiled {
        config,
        diagnostics: diags,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Top,
    Files,
    If,
}

#[derive(Default)]
struct Context {
    /// Which `<IfModule>` blocks apply.
    modules: Modules,
    config: DirConfig,
    pending_conds: Vec<RewriteCond>,
    rules: Vec<RewriteRule>,
    rewrite_seen: bool,
    limit: Option<MethodLimit>,
    authz_items: Vec<(Option<MethodLimit>, AuthzItem)>,
    authz_seen: bool,
    /// The enclosing authz section is a `<RequireAll>` (the file's own
    /// top-level section is an implicit OR).
    authz_in_all: bool,
    mime: Option<MimeConf>,
    expires: Option<ExpiresConf>,
}

impl Context {
    fn finish(mut self) -> DirConfig {
        // Conditions not followed by a rule are dropped (SEMANTICS A16).
        if self.rewrite_seen {
            let rw = self.config.rewrite.get_or_insert_with(RewriteConf::default);
            rw.rules = Arc::new(std::mem::take(&mut self.rules));
        }
        if self.authz_seen {
            self.config.authz = Some(AuthzBlock {
                combine: Combine::Any,
                items: self.authz_items,
            });
        }
        self.config.mime = self.mime;
        self.config.expires = self.expires;
        self.config
    }
    fn rewrite(&mut self) -> &mut RewriteConf {
        self.rewrite_seen = true;
        self.config.rewrite.get_or_insert_with(RewriteConf::default)
    }
    fn access(&mut self) -> &mut AccessCompat {
        self.config
            .access_compat
            .get_or_insert_with(AccessCompat::default)
    }
}

fn span_at(base: Span, raw: &str, offset: usize, len: usize) -> Span {
    let offset = offset.min(raw.len());
    let prefix = raw.get(..offset).unwrap_or(raw);
    Span {
        offset: base.offset + offset,
        line: base.line,
        col: base.col + prefix.chars().count() as u32,
        len: len.max(1),
    }
}

fn arg_diag(d: &Directive, e: ArgError) -> Diagnostic {
    let mut diag = Diagnostic::error(
        span_at(d.args_span, &d.raw_args, e.offset, e.len),
        e.message,
    );
    if let Some(h) = e.help {
        diag = diag.with_help(h);
    }
    diag
}

fn whole(d: &Directive) -> Span {
    Span {
        len: d.name.len(),
        ..d.span
    }
}

fn args_span(d: &Directive) -> Span {
    Span {
        len: d.raw_args.len().max(1),
        ..d.args_span
    }
}

fn compile_nodes(nodes: &[Node], ctx: &mut Context, diags: &mut Vec<Diagnostic>, scope: Scope) {
    let mut i = 0;
    while i < nodes.len() {
        match &nodes[i] {
            Node::Directive(d) => compile_directive(d, ctx, diags, scope),
            Node::Section(s) => {
                let lname = s.name.to_ascii_lowercase();
                if lname == "if" {
                    // Collect the chain: <If> [<ElseIf>...] [<Else>]
                    let mut chain = vec![s];
                    while let Some(Node::Section(n)) = nodes.get(i + 1) {
                        let nl = n.name.to_ascii_lowercase();
                        if nl == "elseif" || nl == "else" {
                            chain.push(n);
                            i += 1;
                            if nl == "else" {
                                break;
                            }
                        } else {
                            break;
                        }
                    }
                    compile_if_chain(&chain, ctx, diags);
                } else {
                    compile_section(s, ctx, diags, scope);
                }
            }
        }
        i += 1;
    }
}

/// The `<Name` of a section's opening line.
fn opening_tag(s: &Section) -> Span {
    Span {
        len: s.name.len() + 1,
        ..s.span
    }
}

fn unclosed(s: &Section) -> Diagnostic {
    Diagnostic::error(
        opening_tag(s),
        format!(
            "`<{}>` section is not closed: `</{}>` is missing",
            s.name, s.name
        ),
    )
    .with_help(format!("add `</{}>` where the section ends", s.name))
}

fn section_arg(s: &Section) -> String {
    let raw = s.raw_args.trim();
    if s.args.len() == 1 {
        s.args[0].text.clone()
    } else {
        raw.to_string()
    }
}

fn compile_section(s: &Section, ctx: &mut Context, diags: &mut Vec<Diagnostic>, scope: Scope) {
    let lname = s.name.to_ascii_lowercase();
    match lname.as_str() {
        "ifmodule" => {
            let arg = section_arg(s);
            let (neg, name) = match arg.strip_prefix('!') {
                Some(n) => (true, n),
                None => (false, arg.as_str()),
            };
            if name.is_empty() {
                diags.push(Diagnostic::error(s.span, "`<IfModule>` needs a module name"));
                return;
            }
            let active = ctx.modules.loaded(name) != neg;
            if !s.closed && !active {
                diags.push(unclosed(s));
                return;
            }
            if !s.closed {
                // Apache accepts it silently (the file's end closes it);
                // say so, and where it opened, before a later edit below
                // it lands inside by surprise.
                diags.push(Diagnostic::warning(
                    opening_tag(s),
                    format!(
                        "`<{}>` is never closed: Apache accepts that, and everything after this line to the end of the file is inside it",
                        s.name
                    ),
                ).with_help(format!("add `</{}>` where the section ends", s.name)));
            }
            if active {
                compile_nodes(&s.body, ctx, diags, scope);
            }
        }
        "ifversion" => match if_version(&s.args) {
            Ok(active) => {
                if !s.closed {
                    diags.push(unclosed(s));
                }
                if active {
                    compile_nodes(&s.body, ctx, diags, scope);
                }
            }
            Err(e) => diags.push(Diagnostic::error(
                Span {
                    len: s.raw_args.len().max(1),
                    ..s.args_span
                },
                e,
            )),
        },
        "ifdefine" => {
            if !s.closed {
                diags.push(unclosed(s));
            }
            let arg = section_arg(s);
            // No -D parameters are ever defined in htgate.
            if arg.starts_with('!') {
                compile_nodes(&s.body, ctx, diags, scope);
            }
        }
        "files" | "filesmatch" => {
            if !s.closed {
                diags.push(unclosed(s));
                return;
            }
            if scope == Scope::If {
                // Apache accepts it, and its file walk never looks inside
                // `<If>`: the section does nothing (recorded in
                // fixtures/conformance/htgate-day-one-directives.case).
                diags.push(Diagnostic::warning(
                    s.span,
                    format!("`<{}>` inside `<If>` is accepted by Apache but never applied: nothing in it takes effect", s.name),
                ));
                return;
            }
            if scope != Scope::Top {
                diags.push(Diagnostic::error(
                    s.span,
                    format!("`<{}>` cannot occur inside another `<Files>` section", s.name),
                ));
                return;
            }
            let words: Vec<String> = s.args.iter().map(|a| a.text.clone()).collect();
            let (regex, pat) = if lname == "filesmatch" {
                (true, words.first().cloned().unwrap_or_default())
            } else if words.first().map(|w| w == "~").unwrap_or(false) {
                (true, words.get(1).cloned().unwrap_or_default())
            } else {
                (false, words.first().cloned().unwrap_or_default())
            };
            let matcher = if regex {
                match Pattern::new(&pat, false) {
                    Ok(p) => FilesMatcher::Regex(p),
                    Err(e) => {
                        diags.push(Diagnostic::error(
                            Span {
                                len: s.raw_args.len().max(1),
                                ..s.args_span
                            },
                            format!("regular expression `{pat}` could not be compiled: {e}"),
                        ));
                        return;
                    }
                }
            } else {
                FilesMatcher::Glob(pat)
            };
            let mut inner = Context {
                modules: ctx.modules,
                ..Default::default()
            };
            compile_nodes(&s.body, &mut inner, diags, Scope::Files);
            let config = inner.finish();
            ctx.config.files.push(FilesSection {
                matcher,
                config: Arc::new(config),
            });
        }
        "limit" | "limitexcept" => {
            if !s.closed {
                diags.push(unclosed(s));
                return;
            }
            let methods: Vec<String> = s.args.iter().map(|a| a.text.to_ascii_uppercase()).collect();
            if methods.is_empty() {
                diags.push(Diagnostic::error(
                    s.span,
                    format!("`<{}>` needs at least one method", s.name),
                ));
                return;
            }
            let saved = ctx.limit.take();
            ctx.limit = Some(MethodLimit {
                except: lname == "limitexcept",
                methods,
            });
            compile_nodes(&s.body, ctx, diags, scope);
            ctx.limit = saved;
        }
        "requireall" | "requireany" | "requirenone" => {
            if !s.closed {
                diags.push(unclosed(s));
                return;
            }
            let combine = match lname.as_str() {
                "requireall" => Combine::All,
                "requireany" => Combine::Any,
                _ => Combine::None,
            };
            // mod_authz_core.c add_authz_section: a negated section
            // (<RequireNone>) in an OR section has no effect, an empty
            // section is refused; both are config errors.
            if combine == Combine::None && !ctx.authz_in_all {
                diags.push(Diagnostic::error(
                    Span {
                        len: s.name.len() + 1,
                        ..s.span
                    },
                    format!(
                        "`<{}>` has no effect here: put it inside `<RequireAll>`",
                        s.name
                    ),
                ));
                return;
            }
            let saved = std::mem::take(&mut ctx.authz_items);
            let saved_all = std::mem::replace(&mut ctx.authz_in_all, combine == Combine::All);
            compile_nodes(&s.body, ctx, diags, scope);
            ctx.authz_in_all = saved_all;
            let items = std::mem::replace(&mut ctx.authz_items, saved);
            if items.is_empty() {
                diags.push(Diagnostic::error(
                    Span {
                        len: s.name.len() + 1,
                        ..s.span
                    },
                    format!("`<{}>` contains no authorization directives", s.name),
                ));
                return;
            }
            ctx.authz_seen = true;
            let limit = ctx.limit.clone();
            ctx.authz_items
                .push((limit, AuthzItem::Block(AuthzBlock { combine, items })));
        }
        "elseif" | "else" => diags.push(Diagnostic::error(
            Span {
                len: s.name.len() + 1,
                ..s.span
            },
            format!("`<{}>` must directly follow an `<If>` or `<ElseIf>` section", s.name),
        )),
        "directory" | "directorymatch" | "location" | "locationmatch" | "virtualhost" => {
            diags.push(Diagnostic::error(
                Span {
                    len: s.name.len() + 1,
                    ..s.span
                },
                format!("`<{}>` is not allowed in .htaccess (server config only)", s.name),
            ))
        }
        _ => diags.push(
            Diagnostic::error(
                Span {
                    len: s.name.len() + 1,
                    ..s.span
                },
                format!(
                    "invalid command `<{}`, perhaps misspelled or defined by a module htgate does not have",
                    s.name
                ),
            ),
        ),
    }
}

fn compile_if_chain(chain: &[&Section], ctx: &mut Context, diags: &mut Vec<Diagnostic>) {
    let mut branches = Vec::new();
    for s in chain {
        if !s.closed {
            diags.push(unclosed(s));
            return;
        }
        let is_else = s.name.eq_ignore_ascii_case("else");
        let cond = if is_else {
            None
        } else {
            let text = if s.args.len() == 1 {
                s.args[0].text.clone()
            } else {
                s.raw_args.clone()
            };
            match expr::parse_bool(&text) {
                Ok(e) => Some(Arc::new(e)),
                Err(e) => {
                    diags.push(Diagnostic::error(
                        Span {
                            len: s.raw_args.len().max(1),
                            ..s.args_span
                        },
                        format!("cannot parse expression in `<{}>`: {e}", s.name),
                    ));
                    return;
                }
            }
        };
        let mut inner = Context {
            modules: ctx.modules,
            ..Default::default()
        };
        compile_nodes(&s.body, &mut inner, diags, Scope::If);
        branches.push((cond, Arc::new(inner.finish())));
    }
    ctx.config.ifs.push(IfChain { branches });
}

fn if_version(args: &[htgate_syntax::htaccess::Arg]) -> Result<bool, String> {
    let words: Vec<&str> = args.iter().map(|a| a.text.as_str()).collect();
    let (op, ver) = match words.as_slice() {
        [v] => ("=", *v),
        [op, v] => (*op, *v),
        _ => return Err("`<IfVersion>` needs `[operator] version`".into()),
    };
    let cur = APACHE_VERSION;
    let (neg, op) = match op.strip_prefix('!') {
        Some(o) => (true, o),
        None => (false, op),
    };
    let result = if op == "~" || (ver.starts_with('/') && ver.ends_with('/') && ver.len() > 1) {
        let re = ver.trim_matches('/');
        let p = Pattern::new(re, false).map_err(|e| format!("bad version regex: {e}"))?;
        p.is_match(&format!("{}.{}.{}", cur.0, cur.1, cur.2))
    } else {
        let parts: Vec<u32> = ver
            .split('.')
            .map(|x| x.parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("bad version `{ver}`"))?;
        let want = (
            parts.first().copied().unwrap_or(0),
            parts.get(1).copied().unwrap_or(0),
            parts.get(2).copied().unwrap_or(0),
        );
        // A partial version compares only the parts given.
        let have = match parts.len() {
            1 => (cur.0, 0, 0),
            2 => (cur.0, cur.1, 0),
            _ => cur,
        };
        match op {
            "=" | "==" => have == want,
            ">" => have > want,
            ">=" => have >= want,
            "<" => have < want,
            "<=" => have <= want,
            _ => return Err(format!("unknown `<IfVersion>` operator `{op}`")),
        }
    };
    Ok(result != neg)
}

fn words(d: &Directive) -> Vec<String> {
    d.args.iter().map(|a| a.text.clone()).collect()
}

fn on_off(d: &Directive) -> Result<bool, Diagnostic> {
    let w = words(d);
    match w.as_slice() {
        [v] if v.eq_ignore_ascii_case("on") => Ok(true),
        [v] if v.eq_ignore_ascii_case("off") => Ok(false),
        _ => Err(Diagnostic::error(
            args_span(d),
            format!("{} must be On or Off", d.name),
        )),
    }
}

fn warn_ignored(d: &Directive, why: &str) -> Diagnostic {
    Diagnostic::warning(
        whole(d),
        format!("`{}` is accepted but ignored: {why}", d.name),
    )
}

/// The offset of a quote that opens an argument and is never closed.
/// Apache silently lets such an argument run to the end of the line, which
/// is almost always a typo that changes the rule's meaning; htgate refuses
/// the file instead (a deliberate, documented difference).
fn unterminated_quote(raw: &str) -> Option<usize> {
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        if b[i] == b'"' || b[i] == b'\'' {
            let q = b[i];
            let start = i;
            i += 1;
            while i < b.len() && b[i] != q {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                i += 1;
            }
            if i >= b.len() {
                return Some(start);
            }
            i += 1;
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
        }
    }
    None
}

fn compile_directive(d: &Directive, ctx: &mut Context, diags: &mut Vec<Diagnostic>, scope: Scope) {
    let lname = d.name.to_ascii_lowercase();
    let line = d.span.line;
    let err = |msg: String| Diagnostic::error(args_span(d), msg);
    // Only where the argument splitter is mod_rewrite's: `ErrorDocument 404
    // "text` (one leading quote) is documented Apache syntax.
    let rewrite_directive = matches!(
        lname.as_str(),
        "rewriterule" | "rewritecond" | "rewritebase"
    );
    if let Some(off) = unterminated_quote(&d.raw_args).filter(|_| rewrite_directive) {
        diags.push(
            Diagnostic::error(
                span_at(d.args_span, &d.raw_args, off, 1),
                format!("unbalanced quote in the arguments of `{}`", d.name),
            )
            .with_help("close the quote, or escape it with a backslash"),
        );
        return;
    }
    match lname.as_str() {
        // ---- mod_rewrite ----
        "rewriteengine" => match on_off(d) {
            Ok(v) => ctx.rewrite().engine = Some(v),
            Err(e) => diags.push(e.with_help("write `RewriteEngine On` or `RewriteEngine Off`")),
        },
        "rewritebase" => {
            let w = words(d);
            match w.as_slice() {
                [b] if b.starts_with('/') => ctx.rewrite().base = Some(b.clone()),
                _ => diags.push(err("RewriteBase: argument is not a valid URL".into())
                    .with_help("RewriteBase takes one URL path starting with `/`, e.g. `RewriteBase /blog/`")),
            }
        }
        "rewriteoptions" => {
            let mut bits = ctx.rewrite().options.unwrap_or(0);
            for w in words(d) {
                let l = w.to_ascii_lowercase();
                bits |= match l.as_str() {
                    "inherit" => RWOPT_INHERIT,
                    "inheritbefore" => RWOPT_INHERIT_BEFORE,
                    "inheritdown" => RWOPT_INHERIT_DOWN,
                    "inheritdownbefore" => RWOPT_INHERIT_DOWN_BEFORE,
                    "ignoreinherit" => RWOPT_IGNORE_INHERIT,
                    "allownoslash" => RWOPT_NOSLASH,
                    "allowanyuri" => 0,
                    "mergebase" => RWOPT_MERGE_BASE,
                    "ignorecontextinfo" => RWOPT_IGNORE_CONTEXT_INFO,
                    "legacyprefixdocroot" => RWOPT_LEGACY_PREFIX_DOCROOT,
                    "unsafeprefixstat" => 0,
                    _ if l.starts_with("maxredirects=") => {
                        diags.push(warn_ignored(
                            d,
                            "MaxRedirects is no longer supported; LimitInternalRecursion applies",
                        ));
                        0
                    }
                    _ => {
                        diags.push(err(format!("RewriteOptions: unknown option `{w}`")));
                        0
                    }
                };
            }
            ctx.rewrite().options = Some(bits);
        }
        "rewritecond" => match rewrite::compile_cond(&d.raw_args, line) {
            Ok(c) => {
                ctx.rewrite_seen = true;
                ctx.pending_conds.push(c)
            }
            Err(e) => diags.push(arg_diag(d, e)),
        },
        "rewriterule" => match rewrite::compile_rule(&d.raw_args, line) {
            Ok(mut r) => {
                r.col = d.span.col;
                r.conds = std::mem::take(&mut ctx.pending_conds);
                ctx.rewrite();
                ctx.rules.push(r);
            }
            Err(e) => {
                ctx.pending_conds.clear();
                diags.push(arg_diag(d, e))
            }
        },
        "rewritemap" => diags.push(
            Diagnostic::error(
                whole(d),
                "RewriteMap not allowed here: it can only be defined in the server configuration",
            )
            .with_help("ask your host to define the map, or rewrite without it"),
        ),
        // ---- core ----
        "options" => match parse_options(&words(d)) {
            Ok(o) => {
                let adds = match o {
                    OptionsLine::Set(v) => v,
                    OptionsLine::Change { add, .. } => add,
                };
                if adds & OPT_MULTI != 0 {
                    diags.push(warn_ignored(
                        d,
                        "MultiViews content negotiation is not implemented: `/page` does not find `page.html`",
                    ));
                }
                if adds & (OPT_EXECCGI | OPT_INCLUDES) != 0 {
                    diags.push(warn_ignored(
                        d,
                        "CGI scripts and server-side includes are not run (PHP runs through PHP-FPM)",
                    ));
                }
                ctx.config.options.push(o)
            }
            Err(e) => diags.push(err(e)),
        },
        "errordocument" => {
            let w = words(d);
            if w.len() != 2 {
                diags.push(err(
                    "ErrorDocument takes a status code and a document".into()
                ));
                return;
            }
            let code: u16 = match w[0].parse() {
                Ok(c) if (400..600).contains(&c) || (300..400).contains(&c) => c,
                _ => {
                    diags.push(err(format!("unsupported HTTP response code `{}`", w[0])));
                    return;
                }
            };
            let quoted = d.args.get(1).map(|a| a.quoted).unwrap_or(false);
            let v = &w[1];
            let doc = if v.eq_ignore_ascii_case("default") && !quoted {
                ErrorDocument::Default
            } else if v.starts_with('/') && !v.contains(' ') && !quoted
                || (v.starts_with('/') && quoted && !v.contains(' '))
            {
                ErrorDocument::Local(v.clone())
            } else if (v.starts_with("http://") || v.starts_with("https://")) && !v.contains(' ') {
                if code == 401 {
                    // AH00113: a 401 must reach the browser to ask for
                    // credentials; Apache ignores the directive and keeps
                    // its own page (recorded in htgate-day-one-directives).
                    diags.push(Diagnostic::warning(
                        d.span,
                        "ErrorDocument 401 with a full URL is ignored (Apache: AH00113): a redirect would never let the browser ask for credentials; use a local path",
                    ));
                    return;
                }
                ErrorDocument::Remote(v.clone())
            } else {
                ErrorDocument::Text(v.clone())
            };
            ctx.config.error_documents.push((code, doc));
        }
        "acceptpathinfo" => {
            let w = words(d);
            match w.first().map(|s| s.to_ascii_lowercase()).as_deref() {
                Some("on") => ctx.config.accept_path_info = Some(true),
                Some("off") => ctx.config.accept_path_info = Some(false),
                Some("default") => ctx.config.accept_path_info = None,
                _ => diags.push(err("AcceptPathInfo must be On, Off or Default".into())),
            }
        }
        "forcetype" => {
            let w = words(d);
            let m = ctx.mime.get_or_insert_with(MimeConf::default);
            m.force_type = Some(match w.first() {
                Some(t) if !t.eq_ignore_ascii_case("none") => Some(t.to_ascii_lowercase()),
                _ => None,
            });
        }
        "sethandler" => {
            let w = words(d);
            let m = ctx.mime.get_or_insert_with(MimeConf::default);
            m.set_handler = Some(match w.first() {
                Some(t) if !t.eq_ignore_ascii_case("none") => Some(t.to_ascii_lowercase()),
                _ => None,
            });
        }
        "adddefaultcharset" => {
            let w = words(d);
            let m = ctx.mime.get_or_insert_with(MimeConf::default);
            m.default_charset = Some(match w.first().map(|s| s.as_str()) {
                Some(v) if v.eq_ignore_ascii_case("off") => None,
                Some(v) if v.eq_ignore_ascii_case("on") => Some("iso-8859-1".into()),
                Some(v) => Some(v.to_string()),
                None => {
                    diags.push(err("AddDefaultCharset needs On, Off or a charset".into()));
                    None
                }
            });
        }
        "fileetag"
        | "serversignature"
        | "contentdigest"
        | "limitrequestbody"
        | "limitxmlrequestbody"
        | "enablemmap"
        | "enablesendfile"
        | "usecanonicalname" => {
            diags.push(warn_ignored(d, "htgate uses its own settings for this"))
        }
        "defaulttype" => diags.push(warn_ignored(
            d,
            "DefaultType has no effect since Apache 2.3",
        )),
        // ---- mod_dir ----
        "directoryindex" => {
            let w = words(d);
            if w.len() == 1 && w[0].eq_ignore_ascii_case("disabled") {
                ctx.config.directory_index = Some(Vec::new());
            } else if w.is_empty() {
                diags.push(err("DirectoryIndex needs at least one file name".into()));
            } else {
                ctx.config.directory_index = Some(w);
            }
        }
        "directoryslash" => match on_off(d) {
            Ok(v) => ctx.config.directory_slash = Some(v),
            Err(e) => diags.push(e),
        },
        "fallbackresource" => {
            let w = words(d);
            ctx.config.fallback_resource = Some(match w.first() {
                Some(v) if v.eq_ignore_ascii_case("disabled") => None,
                Some(v) => Some(v.clone()),
                None => {
                    diags.push(err("FallbackResource needs a URL".into()));
                    None
                }
            });
        }
        // ---- mod_alias ----
        "redirect" | "redirectmatch" | "redirectpermanent" | "redirecttemp" => {
            match parse_redirect(&lname, &words(d)) {
                Ok(r) => ctx.config.redirects.push(r),
                Err(e) => diags.push(err(e)),
            }
        }
        "alias" | "aliasmatch" | "scriptalias" | "scriptaliasmatch" => {
            diags.push(Diagnostic::error(
                whole(d),
                format!(
                    "{} not allowed here: it can only be used in the server configuration",
                    d.name
                ),
            ))
        }
        // ---- mod_headers ----
        "header" | "requestheader" => {
            match headers::parse_action(&words(d), lname == "requestheader") {
                Ok(a) => {
                    if lname == "header" {
                        ctx.config.headers.push(a)
                    } else {
                        ctx.config.request_headers.push(a)
                    }
                }
                Err(e) => diags.push(err(format!("{}: {e}", d.name))),
            }
        }
        // ---- mod_mime ----
        "addtype" | "addcharset" | "addencoding" | "addhandler" | "addlanguage"
        | "addinputfilter" | "addoutputfilter" => {
            let w = words(d);
            if w.len() < 2 {
                diags.push(err(format!(
                    "{} needs a value and at least one extension",
                    d.name
                )));
                return;
            }
            let m = ctx.mime.get_or_insert_with(MimeConf::default);
            let value = w[0].clone();
            for ext in &w[1..] {
                let ext = ext.trim_start_matches('.').to_ascii_lowercase();
                match lname.as_str() {
                    "addtype" => m.types.push((ext, Some(value.to_ascii_lowercase()))),
                    "addcharset" => m.charsets.push((ext, value.clone())),
                    "addencoding" => m.encodings.push((ext, value.to_ascii_lowercase())),
                    "addhandler" => m.handlers.push((ext, value.to_ascii_lowercase())),
                    _ => {}
                }
            }
        }
        "removetype" | "removehandler" | "removeencoding" | "removecharset" | "removelanguage"
        | "removeoutputfilter" | "removeinputfilter" => {
            let m = ctx.mime.get_or_insert_with(MimeConf::default);
            for ext in words(d) {
                let ext = ext.trim_start_matches('.').to_ascii_lowercase();
                if lname == "removetype" {
                    m.types.push((ext, None));
                }
            }
        }
        "defaultlanguage"
        | "languagepriority"
        | "forcelanguagepriority"
        | "multiviewsmatch"
        | "modmimeusepathinfo" => {
            diags.push(warn_ignored(d, "content negotiation is not implemented"))
        }
        // ---- mod_filter / mod_deflate ----
        "addoutputfilterbytype" => {
            let w = words(d);
            if w.len() < 2 {
                diags.push(err(
                    "AddOutputFilterByType needs a filter and at least one MIME type".into(),
                ));
                return;
            }
            let filters: Vec<String> = w[0]
                .split(';')
                .filter(|f| !f.is_empty())
                .map(|f| f.to_ascii_lowercase())
                .collect();
            if filters.iter().any(|f| f == "deflate") {
                let df = ctx.config.deflate.get_or_insert_with(Default::default);
                // mod_filter compares types exactly (case-sensitively)
                for t in &w[1..] {
                    if !df.by_type.contains(t) {
                        df.by_type.push(t.clone());
                    }
                }
            }
            let others: Vec<&String> = filters.iter().filter(|f| *f != "deflate").collect();
            if !others.is_empty() {
                diags.push(warn_ignored(
                    d,
                    &format!(
                        "only the DEFLATE output filter is implemented (not {})",
                        others
                            .iter()
                            .map(|f| f.to_ascii_uppercase())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        "setoutputfilter" => {
            let w = words(d);
            let deflate = w
                .iter()
                .flat_map(|x| x.split(';'))
                .any(|f| f.eq_ignore_ascii_case("deflate"));
            ctx.config
                .deflate
                .get_or_insert_with(Default::default)
                .always = Some(deflate);
            if !deflate {
                diags.push(warn_ignored(
                    d,
                    "only the DEFLATE output filter is implemented",
                ));
            }
        }
        // ---- PHP settings (mod_php syntax, passed to PHP-FPM) ----
        "php_value" | "php_flag" => {
            let w = words(d);
            if w.len() != 2 {
                diags.push(err(format!("{} needs a setting name and a value", d.name)));
                return;
            }
            let name = &w[0];
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            {
                diags.push(err(format!("`{name}` is not a PHP setting name")));
                return;
            }
            let value = if lname == "php_flag" {
                // mod_php's php_flag: On/1/Yes/True are "1", anything else "0"
                let v = w[1].to_ascii_lowercase();
                if matches!(v.as_str(), "on" | "1" | "yes" | "true") {
                    "1".to_string()
                } else {
                    "0".to_string()
                }
            } else if w[1].eq_ignore_ascii_case("none") {
                String::new()
            } else {
                w[1].clone()
            };
            ctx.config.php_values.push(PhpSetting {
                name: name.clone(),
                value,
                at: format!("{}:{}", d.span.line, d.span.col),
            });
        }
        "php_admin_value" | "php_admin_flag" => diags.push(
            Diagnostic::error(
                whole(d),
                format!(
                    "{} not allowed here: only the server configuration may set it",
                    d.name
                ),
            )
            .with_help("use `php_value`/`php_flag`, or ask the host to set it for the site"),
        ),
        // ---- mod_expires ----
        "expiresactive" => match on_off(d) {
            Ok(v) => ctx.expires.get_or_insert_with(Default::default).active = Some(v),
            Err(e) => diags.push(e),
        },
        "expiresdefault" => match parse_expires(&words(d)) {
            Ok(r) => ctx.expires.get_or_insert_with(Default::default).default = Some(r),
            Err(e) => diags.push(err(e)),
        },
        "expiresbytype" => {
            let w = words(d);
            if w.len() < 2 {
                diags.push(err("ExpiresByType needs a MIME type and a time".into()));
                return;
            }
            match parse_expires(&w[1..]) {
                Ok(r) => ctx
                    .expires
                    .get_or_insert_with(Default::default)
                    .by_type
                    .push((w[0].to_ascii_lowercase(), r)),
                Err(e) => diags.push(err(e)),
            }
        }
        // ---- mod_env ----
        "setenv" => {
            let w = words(d);
            match w.as_slice() {
                [n] => ctx.config.set_env.push((n.clone(), Some(String::new()))),
                [n, v, ..] => ctx.config.set_env.push((n.clone(), Some(v.clone()))),
                _ => diags.push(err("SetEnv needs a variable name".into())),
            }
        }
        "unsetenv" => {
            for n in words(d) {
                ctx.config.set_env.push((n, None));
            }
        }
        "passenv" => diags.push(warn_ignored(
            d,
            "the server's environment is never passed to sites (it could leak secrets)",
        )),
        // ---- mod_setenvif ----
        "setenvif" | "setenvifnocase" | "browsermatch" | "browsermatchnocase" | "setenvifexpr" => {
            match parse_setenvif(&lname, &words(d)) {
                Ok(s) => ctx.config.set_env_if.push(s),
                Err(e) => diags.push(err(e)),
            }
        }
        // ---- access control ----
        "require" => match parse_require(&words(d)) {
            // mod_authz_core.c add_authz_provider: `Require not` in an OR
            // section (the top level or <RequireAny>) is a config error.
            Ok(AuthzItem::Require { negate: true, .. }) if !ctx.authz_in_all => diags.push(
                err("a negated Require has no effect here".into()).with_help(
                    "put `Require not ...` inside `<RequireAll>` next to a positive Require",
                ),
            ),
            Ok(item) => {
                if let AuthzItem::Require {
                    provider: Provider::Host(_),
                    ..
                } = &item
                {
                    diags.push(
                        Diagnostic::warning(
                            whole(d),
                            "`Require host` never matches: htgate does no DNS look-ups while serving (as Apache when its double-reverse look-up fails)",
                        )
                        .with_help("use `Require ip` with the addresses"),
                    );
                }
                ctx.authz_seen = true;
                let limit = ctx.limit.clone();
                ctx.authz_items.push((limit, item));
            }
            Err(e) => diags.push(err(e)),
        },
        "order" => {
            let w = words(d).join("").to_ascii_lowercase();
            let order = match w.as_str() {
                "deny,allow" => Order::DenyAllow,
                "allow,deny" => Order::AllowDeny,
                "mutual-failure" => Order::MutualFailure,
                _ => {
                    diags.push(err(
                        "unknown order: use `Deny,Allow`, `Allow,Deny` or `Mutual-failure`".into(),
                    ));
                    return;
                }
            };
            ctx.access().order = order;
        }
        "allow" | "deny" => {
            let w = words(d);
            if w.len() < 2 || !w[0].eq_ignore_ascii_case("from") {
                diags.push(err(format!("{} must be followed by `from`", d.name)));
                return;
            }
            let limit = ctx.limit.clone();
            for h in &w[1..] {
                let entry = if h.eq_ignore_ascii_case("all") {
                    AllowFrom::All
                } else if let Some(v) = h.strip_prefix("env=") {
                    match v.strip_prefix('!') {
                        Some(n) => AllowFrom::Env {
                            negate: true,
                            name: n.to_string(),
                        },
                        None => AllowFrom::Env {
                            negate: false,
                            name: v.to_string(),
                        },
                    }
                } else if let Some(m) = IpMatch::parse(h) {
                    AllowFrom::Ip(m)
                } else {
                    diags.push(
                        Diagnostic::warning(
                            whole(d),
                            format!("`{h}` is a host name, which never matches: htgate does no DNS look-ups while serving (as Apache when its double-reverse look-up fails)"),
                        )
                        .with_help("use IP addresses or networks"),
                    );
                    AllowFrom::Host(h.to_ascii_lowercase())
                };
                let acc = ctx.access();
                if lname == "allow" {
                    acc.allow.push((limit.clone(), entry));
                } else {
                    acc.deny.push((limit.clone(), entry));
                }
            }
        }
        "satisfy" => {
            let w = words(d);
            match w.first().map(|s| s.to_ascii_lowercase()).as_deref() {
                Some("any") => ctx.access().satisfy_any = true,
                Some("all") => ctx.access().satisfy_any = false,
                _ => diags.push(err("Satisfy must be All or Any".into())),
            }
        }
        // ---- HTTP Basic authentication ----
        "authtype" | "authname" | "authuserfile" | "authgroupfile" => {
            let w = words(d);
            let Some(v) = w.first().cloned() else {
                diags.push(err(format!("{} needs a value", d.name)));
                return;
            };
            let a = ctx.config.auth.get_or_insert_with(Default::default);
            match lname.as_str() {
                "authtype" => {
                    if v.eq_ignore_ascii_case("none") {
                        a.auth_type = Some(None);
                    } else if v.eq_ignore_ascii_case("basic") {
                        a.auth_type = Some(Some("Basic".into()));
                    } else {
                        diags.push(err(format!(
                            "AuthType `{v}` is not supported: htgate has Basic authentication (Digest needs mod_auth_digest)"
                        )));
                    }
                }
                "authname" => a.name = Some(v),
                "authuserfile" => a.user_file = Some(v),
                _ => a.group_file = Some(v),
            }
        }
        "authbasicprovider" => {
            for p in words(d) {
                if !p.eq_ignore_ascii_case("file") {
                    diags.push(err(format!(
                        "authentication provider `{p}` is not available: htgate has `file` (AuthUserFile)"
                    )));
                }
            }
        }
        "authmerging" | "authbasicauthoritative" | "authzuserauthoritative" => {
            diags.push(warn_ignored(d, "htgate keeps Apache's default for this"))
        }
        // ---- mod_autoindex, mod_ssl and other accepted-but-inert directives ----
        // ---- mod_autoindex ----
        n if htgate_content::autoindex::DIRECTIVES
            .iter()
            .any(|x| x.eq_ignore_ascii_case(n)) =>
        {
            let ix = ctx.config.index.get_or_insert_with(Default::default);
            match ix.apply_directive(&d.name, &words(d)) {
                Ok(_) => {}
                Err(e) => diags.push(err(e)),
            }
        }
        "ssloptions" => diags.push(warn_ignored(d, "TLS variables for CGI are not exported")),
        "sslrequiressl" => {
            ctx.authz_seen = true;
            let limit = ctx.limit.clone();
            match expr::parse_bool("%{HTTPS} == 'on'") {
                Ok(e) => ctx.authz_items.push((
                    limit,
                    AuthzItem::Require {
                        negate: false,
                        provider: Provider::Expr(Arc::new(e)),
                    },
                )),
                Err(e) => diags.push(err(format!("internal expression error: {e}"))),
            }
        }
        _ => {
            let _ = scope;
            diags.push(
                Diagnostic::error(
                    whole(d),
                    format!(
                        "invalid command `{}`, perhaps misspelled or defined by a module htgate does not have",
                        d.name
                    ),
                )
                .with_help(unknown_help(&lname)),
            );
        }
    }
}

fn unknown_help(lname: &str) -> String {
    const KNOWN: &[&str] = &[
        "RewriteEngine",
        "RewriteRule",
        "RewriteCond",
        "RewriteBase",
        "RewriteOptions",
        "Options",
        "Require",
        "Order",
        "Allow",
        "Deny",
        "Header",
        "RequestHeader",
        "DirectoryIndex",
        "ErrorDocument",
        "Redirect",
        "RedirectMatch",
        "AddType",
        "SetEnv",
        "SetEnvIf",
        "ExpiresActive",
        "ExpiresByType",
        "ExpiresDefault",
        "ForceType",
    ];

    let best = KNOWN
        .iter()
        .map(|k| {
            (
                super::rewrite::edit_distance(&k.to_ascii_lowercase(), lname),
                k,
            )
        })
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, k)) if d <= 2 => format!("did you mean `{k}`?"),
        _ => "wrap it in `<IfModule ...>` if it belongs to a module that may be missing".into(),
    }
}

fn parse_options(words: &[String]) -> Result<OptionsLine, String> {
    let mut add = 0u16;
    let mut remove = 0u16;
    let mut absolute: Option<u16> = None;
    let mut relative = false;
    for w in words {
        let (sign, name) = match w.as_bytes().first() {
            Some(b'+') => (Some(true), &w[1..]),
            Some(b'-') => (Some(false), &w[1..]),
            _ => (None, w.as_str()),
        };
        let bit = match name.to_ascii_lowercase().as_str() {
            "indexes" => OPT_INDEXES,
            "includes" => OPT_INCLUDES,
            "includesnoexec" => OPT_INCNOEXEC,
            "followsymlinks" => OPT_SYM_LINKS,
            "symlinksifownermatch" => OPT_SYM_OWNER,
            "execcgi" => OPT_EXECCGI,
            "multiviews" => OPT_MULTI,
            "all" => OPT_ALL,
            "none" => 0,
            _ => return Err(format!("illegal option `{name}`")),
        };
        match sign {
            // Apache accepts `Options All -Indexes`: signed options after
            // absolute ones change the absolute set (recorded in
            // fixtures/conformance/htgate-day-one-directives.case); the
            // other order is the error below.
            Some(s) if absolute.is_some() => {
                let v = absolute.unwrap_or(0);
                absolute = Some(if s { v | bit } else { v & !bit });
            }
            Some(s) => {
                relative = true;
                if s {
                    add |= bit;
                    remove &= !bit;
                } else {
                    remove |= bit;
                    add &= !bit;
                }
            }
            None => {
                if relative {
                    return Err(
                        "either all Options must start with + or -, or no Option may".into(),
                    );
                }
                absolute = Some(absolute.unwrap_or(0) | bit);
            }
        }
    }
    Ok(match absolute {
        Some(v) => OptionsLine::Set(v),
        None => OptionsLine::Change { add, remove },
    })
}

fn parse_redirect(lname: &str, w: &[String]) -> Result<AliasRedirect, String> {
    let mut i = 0;
    let mut status = match lname {
        "redirectpermanent" => 301,
        _ => 302,
    };
    if lname == "redirect" || lname == "redirectmatch" {
        if let Some(first) = w.first() {
            let l = first.to_ascii_lowercase();
            let explicit = match l.as_str() {
                "permanent" => Some(301),
                "temp" => Some(302),
                "seeother" => Some(303),
                "gone" => Some(410),
                _ if l.chars().all(|c| c.is_ascii_digit()) && !l.is_empty() => Some(
                    l.parse::<u16>()
                        .map_err(|_| format!("bad status `{first}`"))?,
                ),
                _ => None,
            };
            if let Some(s) = explicit {
                status = s;
                i = 1;
            }
        }
    }
    let from = w.get(i).ok_or("Redirect needs a URL path")?.clone();
    let target = w.get(i + 1).cloned();
    let is_redirect = (300..400).contains(&status);
    if is_redirect && target.is_none() {
        return Err("URL to redirect to is missing".into());
    }
    if !is_redirect && target.is_some() {
        return Err("Redirect URL not valid for this status".into());
    }
    if let Some(t) = &target {
        if !(t.starts_with('/') || t.contains("://")) {
            return Err(format!("Redirect to non-URL `{t}`"));
        }
    }
    let kind = if lname == "redirectmatch" {
        AliasKind::Regex(
            Pattern::new(&from, false).map_err(|e| format!("bad regex `{from}`: {e}"))?,
        )
    } else {
        AliasKind::Prefix(from)
    };
    Ok(AliasRedirect {
        kind,
        status,
        target,
    })
}

/// `ExpiresDefault "access plus 1 month"` or `A2592000` / `M60`.
fn parse_expires(w: &[String]) -> Result<ExpiresRule, String> {
    let text = w.join(" ");
    let t = text.trim();
    if let Some(rest) = t.strip_prefix(['A', 'M']) {
        if let Ok(secs) = rest.parse::<i64>() {
            return Ok(ExpiresRule {
                from_access: t.starts_with('A'),
                seconds: secs,
            });
        }
    }
    let mut it = t.split_whitespace();
    let base = it.next().ok_or("missing expiry time")?.to_ascii_lowercase();
    let from_access = match base.as_str() {
        "access" | "now" => true,
        "modification" => false,
        _ => {
            return Err(format!(
                "bad expires code `{t}`: must start with `access`, `now` or `modification`"
            ))
        }
    };
    let mut words: Vec<String> = it.map(|s| s.to_ascii_lowercase()).collect();
    if words.first().map(|w| w == "plus").unwrap_or(false) {
        words.remove(0);
    }
    let mut seconds = 0i64;
    let mut k = 0;
    while k < words.len() {
        let n: i64 = words[k]
            .parse()
            .map_err(|_| format!("bad expires code `{t}`: `{}` is not a number", words[k]))?;
        let unit = words
            .get(k + 1)
            .ok_or(format!("bad expires code `{t}`: a unit is missing"))?;
        let mult = match unit.trim_end_matches('s') {
            "year" => 365 * 86400,
            "month" => 30 * 86400,
            "week" => 7 * 86400,
            "day" => 86400,
            "hour" => 3600,
            "minute" => 60,
            "second" => 1,
            _ => return Err(format!("bad expires code `{t}`: unknown unit `{unit}`")),
        };
        seconds += n * mult;
        k += 2;
    }
    Ok(ExpiresRule {
        from_access,
        seconds,
    })
}

fn parse_setenvif(lname: &str, w: &[String]) -> Result<SetEnvIf, String> {
    let (attr_word, rest): (Option<&String>, &[String]) = match lname {
        "browsermatch" | "browsermatchnocase" => (None, w),
        _ => (w.first(), w.get(1..).unwrap_or(&[])),
    };
    let nocase = lname.ends_with("nocase");
    if lname == "setenvifexpr" {
        let e = attr_word.ok_or("SetEnvIfExpr needs an expression")?;
        let ex = expr::parse_bool(e).map_err(|e| format!("bad expression: {e}"))?;
        return Ok(SetEnvIf {
            attribute: SetEnvAttr::Expr(Arc::new(ex)),
            pattern: Pattern::new("", false).map_err(|e| e.to_string())?,
            assignments: assignments(rest)?,
            simple: false,
        });
    }
    let attribute = match attr_word {
        None => SetEnvAttr::Header("User-Agent".into()),
        Some(a) => match a.to_ascii_lowercase().as_str() {
            "remote_host" => SetEnvAttr::RemoteHost,
            "remote_addr" => SetEnvAttr::RemoteAddr,
            "server_addr" => SetEnvAttr::ServerAddr,
            "request_method" => SetEnvAttr::RequestMethod,
            "request_protocol" => SetEnvAttr::RequestProtocol,
            "request_uri" => SetEnvAttr::RequestUri,
            _ => {
                // mod_setenvif.c is_header_regex: a name with anything
                // but `-`, `_`, letters and digits is a regex over the
                // request's header names.
                if !a
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    SetEnvAttr::HeaderRegex(
                        Pattern::new(a, nocase).map_err(|e| format!("bad regex `{a}`: {e}"))?,
                    )
                } else {
                    SetEnvAttr::Header(a.clone())
                }
            }
        },
    };
    let (pat, assigns) = rest
        .split_first()
        .ok_or("SetEnvIf needs a regular expression")?;
    if assigns.is_empty() {
        return Err("SetEnvIf needs at least one variable to set".into());
    }
    Ok(SetEnvIf {
        attribute,
        pattern: Pattern::new(pat, nocase).map_err(|e| format!("bad regex `{pat}`: {e}"))?,
        assignments: assignments(assigns)?,
        simple: non_regex_pattern(pat),
    })
}

/// mod_setenvif.c non_regex_pattern: true when the pattern has no
/// unescaped regex metacharacter and no escaped ordinary character.
fn non_regex_pattern(pat: &str) -> bool {
    let mut in_escape = false;
    for c in pat.chars() {
        match c {
            '^' | '.' | '$' | '|' | '(' | ')' | '[' | ']' | '*' | '+' | '?' | '{' | '}' => {
                if !in_escape {
                    return false;
                }
                in_escape = false;
            }
            '\\' => in_escape = !in_escape,
            _ => {
                if in_escape {
                    return false;
                }
            }
        }
    }
    true
}

fn assignments(w: &[String]) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    for a in w {
        if let Some(n) = a.strip_prefix('!') {
            out.push((n.to_string(), None));
        } else if let Some((n, v)) = a.split_once('=') {
            out.push((n.to_string(), Some(v.to_string())));
        } else {
            out.push((a.clone(), Some("1".to_string())));
        }
    }
    Ok(out)
}

fn parse_require(w: &[String]) -> Result<AuthzItem, String> {
    let (negate, w) = match w.first() {
        Some(f) if f.eq_ignore_ascii_case("not") => (true, &w[1..]),
        _ => (false, w),
    };
    let kind = w
        .first()
        .ok_or("Require needs a provider, e.g. `Require all granted`")?;
    let rest = &w[1..];
    let provider = match kind.to_ascii_lowercase().as_str() {
        "all" => match rest.first().map(|s| s.to_ascii_lowercase()).as_deref() {
            Some("granted") => Provider::All(true),
            Some("denied") => Provider::All(false),
            _ => return Err("`Require all` must be followed by `granted` or `denied`".into()),
        },
        "ip" => {
            let mut v = Vec::new();
            for r in rest {
                v.push(
                    IpMatch::parse(r)
                        .ok_or(format!("`{r}` is not a valid IP address or network"))?,
                );
            }
            Provider::Ip(v)
        }
        "host" | "forward-dns" => Provider::Host(rest.to_vec()),
        "local" => Provider::Local,
        "env" => Provider::Env(rest.to_vec()),
        "method" => Provider::Method(rest.to_vec()),
        "expr" => {
            let text = rest.join(" ");
            Provider::Expr(Arc::new(
                expr::parse_bool(&text).map_err(|e| format!("cannot parse expression: {e}"))?,
            ))
        }
        "valid-user" => Provider::ValidUser,
        "user" => Provider::Users(rest.to_vec()),
        "group" => Provider::Groups(rest.to_vec()),
        "file-owner" | "file-group" => Provider::FileOwner,
        other => return Err(format!("unknown authorization provider `{other}`")),
    };
    Ok(AuthzItem::Require { negate, provider })
}
